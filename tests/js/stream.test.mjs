import assert from "node:assert/strict";
import { test } from "node:test";

import { MAX_STREAM_URL, StreamFailedError, StreamingDisabledError, StreamManager } from "../../web/static/js/stream.js";
import { answerEvents, fakeEventSourceClass, flush } from "./fakes.mjs";

function setup({ probe = async () => ({ state: "enabled" }) } = {}) {
  const ES = fakeEventSourceClass();
  const events = [];
  const readies = [];
  let tickets = 0;
  let now = 0;
  const manager = new StreamManager({
    EventSourceImpl: ES,
    getTicket: async () => `ticket${++tickets}`,
    probe,
    onReady: (r) => readies.push(r),
    onEvent: (e) => events.push(e),
    now: () => now,
  });
  return { ES, manager, events, readies, tickets: () => tickets, tick: (ms) => (now += ms) };
}

const ask = (cmid, extra = {}) => ({ q: "interviews", windowDays: 30, conversationId: "c_1", cmid, ...extra });

test("an answer streams through one EventSource and resolves on its done", async () => {
  const t = setup();
  const pending = t.manager.ask(ask("m_1"));
  await flush();
  const es = t.ES.last;
  assert.match(es.url, /^\/api\/chat\/stream\?q=interviews&window_days=30&client_message_id=m_1&conversation_id=c_1&ticket=ticket1$/);
  es.emit("ready", { conversation_id: "c_1", epoch: "e1", client_message_id: "m_1" });
  for (const event of answerEvents("c_1", "m_1")) es.emit(event.type, event);
  assert.deepEqual(await pending, { outcome: "terminal" });
  assert.ok(es.closed);
  assert.equal(t.readies[0].epoch, "e1");
  assert.equal(t.events.at(-1).type, "done");
});

test("a new question closes the old stream first: never two open", async () => {
  const t = setup();
  const first = t.manager.ask(ask("m_1"));
  await flush();
  const old = t.ES.last;
  old.emit("ready", { conversation_id: "c_1", epoch: "e1" });
  const second = t.manager.ask(ask("m_2", { windowDays: 7 }));
  assert.deepEqual(await first, { outcome: "superseded" });
  assert.ok(old.closed);
  await flush();
  assert.equal(t.ES.open.length, 1);
  old.emit("delta", { id: "9-0", type: "delta", conversation_id: "c_1", data: { client_message_id: "m_1" } });
  assert.equal(t.events.length, 0, "a closed stream's late events are dropped");
  for (const event of answerEvents("c_1", "m_2")) t.ES.last.emit(event.type, event);
  assert.deepEqual(await second, { outcome: "terminal" });
});

test("the server's `error` event is an answer event, not a connection failure", async () => {
  const t = setup();
  const pending = t.manager.ask(ask("m_1"));
  await flush();
  t.ES.last.emit("ready", {});
  t.ES.last.emit("error", { id: "1-0", type: "error", conversation_id: "c_1", data: { client_message_id: "m_1", code: "assistant_failed" } });
  assert.deepEqual(await pending, { outcome: "terminal" });
  assert.equal(t.events[0].type, "error");
});

test("a drop mid-answer (or the server's reconnect) hands over, without reopening", async () => {
  const t = setup();
  const pending = t.manager.ask(ask("m_1"));
  await flush();
  t.ES.last.emit("ready", {});
  t.ES.last.emit("reconnect", { reason: "server restarting" });
  assert.deepEqual(await pending, { outcome: "dropped" });
  const again = t.manager.ask(ask("m_2"));
  await flush();
  t.ES.last.emit("ready", {});
  t.ES.last.emit("error"); // the connection itself failing
  assert.deepEqual(await again, { outcome: "dropped" });
  assert.equal(t.ES.open.length, 0);
});

test("the canary: a 503 with X-Chat-Streaming-Disabled rejects, and later asks skip the stream", async () => {
  const t = setup({ probe: async () => ({ state: "disabled", retryAfterMs: 60_000 }) });
  const pending = t.manager.ask(ask("m_1"));
  await flush();
  t.ES.last.emit("error");
  await assert.rejects(pending, StreamingDisabledError);
  await assert.rejects(t.manager.ask(ask("m_2")), StreamingDisabledError);
  assert.equal(t.tickets(), 1, "no ticket spent while streaming is known to be off");
  t.tick(60_001);
  t.manager.ask(ask("m_3"));
  await flush();
  assert.equal(t.tickets(), 2, "tried again after Retry-After");
});

test("any other failure before `ready` rejects so the question goes over JSON", async () => {
  const t = setup({ probe: async () => ({ state: "unreachable" }) });
  const pending = t.manager.ask(ask("m_1"));
  await flush();
  t.ES.last.emit("error");
  const error = await pending.catch((e) => e);
  assert.ok(error instanceof StreamFailedError);
  assert.equal(error.reason, "unreachable");
});

test("a question too long for a URL is not streamed", async () => {
  const t = setup();
  const long = "é".repeat(700);
  assert.ok(encodeURIComponent(long).length > MAX_STREAM_URL);
  await assert.rejects(t.manager.ask(ask("m_1", { q: long })), StreamFailedError);
  assert.equal(t.tickets(), 0);
});

test("close() ends the stream and nothing survives", async () => {
  const t = setup();
  const pending = t.manager.ask(ask("m_1"));
  await flush();
  t.manager.close();
  assert.deepEqual(await pending, { outcome: "superseded" });
  assert.equal(t.ES.open.length, 0);
  assert.equal(t.manager.open, false);
});

test("closing while the ticket is on its way opens nothing", async () => {
  const t = setup();
  const pending = t.manager.ask(ask("m_1"));
  t.manager.close();
  assert.deepEqual(await pending, { outcome: "superseded" });
  assert.equal(t.ES.instances.length, 0);
});
