import assert from "node:assert/strict";
import { test } from "node:test";

import { ChatController } from "../../web/static/js/chat.js";
import { StreamManager } from "../../web/static/js/stream.js";
import { answerEvents, fakeEventSourceClass, flush } from "./fakes.mjs";

function setup({ probe = async () => ({ state: "enabled" }), api = {} } = {}) {
  const ES = fakeEventSourceClass();
  const notes = [];
  const socketFrames = [];
  const apiCalls = [];
  let online = true;
  const fakeApi = {
    get: async (path) => {
      apiCalls.push(["GET", path]);
      if (api.get) return api.get(path);
      if (path.startsWith("/api/conversations/")) return { epoch: "e1", reset: false, events: [] };
      return { conversations: [] };
    },
    post: async (path, body, options) => {
      apiCalls.push(["POST", path, body, options]);
      return api.post(path, body);
    },
  };
  const chat = new ChatController({
    api: fakeApi,
    notify: (note) => {
      notes.push(note);
      return () => (note.dismissed = true);
    },
    config: { max_question_chars: 2000, default_window_days: 30 },
    isOnline: () => online,
  });
  const stream = new StreamManager({
    EventSourceImpl: ES,
    getTicket: async () => "ticket",
    probe,
    onReady: (ready) => chat.streamReady(ready),
    onEvent: (event) => chat.receive(event),
  });
  const socket = { send: (frame) => socketFrames.push(frame) };
  chat.attach({ stream, socket });
  chat.socketStateChanged("open");
  return { ES, chat, notes, socketFrames, apiCalls, setOnline: (v) => (online = v) };
}

const cmidOf = (es) => new URL(es.url, "http://x").searchParams.get("client_message_id");
const paramsOf = (es) => new URL(es.url, "http://x").searchParams;

test("changing the window mid-stream closes the stream and gives exactly one answer", async () => {
  const t = setup();
  t.chat.send("interviews");
  await flush();
  const first = t.ES.last;
  const conversationId = paramsOf(first).get("conversation_id");
  assert.match(conversationId, /^c_[0-9a-f]{16}$/);
  const m1 = cmidOf(first);
  first.emit("ready", { conversation_id: conversationId, epoch: "e1", client_message_id: m1 });
  const q1 = answerEvents(conversationId, m1, { startMs: 1000 });
  first.emit("question", q1[0]);

  t.chat.setWindow(7);
  await flush();
  assert.ok(first.closed, "the old stream is closed");
  assert.equal(t.ES.open.length, 1);
  const second = t.ES.last;
  assert.equal(paramsOf(second).get("window_days"), "7");
  assert.equal(paramsOf(second).get("conversation_id"), conversationId, "same conversation: the server cancels the old one");
  assert.equal(paramsOf(second).get("q"), "interviews");
  const m2 = cmidOf(second);
  second.emit("ready", { conversation_id: conversationId, epoch: "e1", client_message_id: m2 });
  const q2 = answerEvents(conversationId, m2, { startMs: 2000, windowDays: 7 });
  second.emit("question", q2[0]);
  second.emit("done", { id: "2000-90", type: "done", conversation_id: conversationId, data: { client_message_id: m1, cancelled: true } });
  for (const event of answerEvents(conversationId, m2, { startMs: 3000, windowDays: 7 }).slice(1)) second.emit(event.type, event);

  const view = t.chat.current.view();
  const answers = view.filter((turn) => turn.status === "done");
  assert.equal(answers.length, 1);
  assert.equal(answers[0].search.window_days, 7);
  assert.equal(view.find((turn) => turn.cmid === m1).status, "superseded");
  assert.equal(t.chat.active, null);
});

test("a message over the limit is refused in the page, naming the limit", async () => {
  const t = setup();
  const result = t.chat.send("x".repeat(2001));
  assert.equal(result.ok, false);
  assert.match(result.message, /2,001 characters; the limit is 2,000/);
  assert.equal(t.notes[0].level, "error");
  await flush();
  assert.equal(t.ES.instances.length, 0);
  assert.equal(t.chat.current, null);
});

test("offline messages queue and go out one at a time with their ids when the socket is back", async () => {
  const t = setup();
  t.setOnline(false);
  t.chat.socketStateChanged("offline");
  const ids = ["one", "two", "three"].map((q) => t.chat.send(q).cmid);
  await flush();
  assert.equal(t.ES.instances.length, 0);
  assert.equal(t.chat.outbox.size, 3);
  assert.deepEqual(t.chat.current.view().map((turn) => turn.local), ["queued", "queued", "queued"]);
  assert.equal(t.notes.filter((n) => /when the connection is back/.test(n.message)).length, 1);

  t.setOnline(true);
  t.chat.socketStateChanged("open");
  t.chat.socketReady();
  await flush();
  assert.ok(t.notes.find((n) => /when the connection is back/.test(n.message)).dismissed, "the notice goes once sending starts");
  for (const cmid of ids) {
    assert.equal(t.ES.open.length, 1);
    const es = t.ES.last;
    assert.equal(cmidOf(es), cmid, "sent with the id it was given when typed");
    const conversationId = paramsOf(es).get("conversation_id");
    es.emit("ready", { conversation_id: conversationId, epoch: "e1" });
    for (const event of answerEvents(conversationId, cmid, { startMs: 1000 + ids.indexOf(cmid) * 1000 })) es.emit(event.type, event);
    await flush();
  }
  assert.equal(t.ES.instances.length, 3);
  assert.deepEqual(t.chat.current.view().map((turn) => turn.status), ["done", "done", "done"]);
});

test("streaming switched off: the same question goes to POST /api/chat and renders the same", async () => {
  const t = setup({
    probe: async () => ({ state: "disabled", retryAfterMs: 60_000 }),
    api: {
      post: async (path, body) => ({
        conversation_id: body.conversation_id,
        answer: "I found 1 email [1]",
        citations: [{ id: "u_1:a", subject: "Interview" }],
        search: { query: "interviews", window_days: 30, total_hits: 1 },
      }),
    },
  });
  const { cmid } = t.chat.send("interviews");
  await flush();
  t.ES.last.emit("error");
  await flush();
  await flush();
  const post = t.apiCalls.find((call) => call[0] === "POST");
  assert.equal(post[1], "/api/chat");
  assert.equal(post[2].client_message_id, cmid);
  assert.equal(post[3].idempotent, true);
  const [turn] = t.chat.current.view();
  assert.equal(turn.status, "done");
  assert.equal(turn.text, "I found 1 email [1]");
  assert.ok(t.apiCalls.some((call) => call[1].includes("/events?after=0")), "then caught up with the log");
});

test("a dropped stream is resumed over the socket from the last applied event", async () => {
  const t = setup();
  const { cmid } = t.chat.send("interviews");
  await flush();
  const es = t.ES.last;
  const conversationId = paramsOf(es).get("conversation_id");
  es.emit("ready", { conversation_id: conversationId, epoch: "e1" });
  const events = answerEvents(conversationId, cmid);
  es.emit("question", events[0]);
  es.emit("search", events[1]);
  es.emit("reconnect", { reason: "server restarting" });
  await flush();
  const resume = t.socketFrames.at(-1);
  assert.deepEqual(resume, { type: "resume", conversation_id: conversationId, epoch: "e1", after: events[1].id });
  for (const event of events) t.chat.socketFrame(event); // the socket replays from there (and more)
  assert.equal(t.chat.current.view()[0].status, "done");
  assert.equal(t.chat.current.turns.length, 1);
});

test("`reset` refetches the conversation; socket `ready` resumes the open one", async () => {
  const t = setup({
    api: {
      get: async () => ({ epoch: "e2", reset: false, events: answerEvents("c_1", "m_1") }),
    },
  });
  await t.chat.open("c_1");
  assert.equal(t.chat.current.view()[0].status, "done");
  const lastId = t.chat.current.lastId;
  t.chat.socketFrame({ type: "reset", conversation_id: "c_1", epoch: "e2" });
  await flush();
  assert.equal(t.chat.current.turns.length, 1);
  t.socketFrames.length = 0;
  t.chat.socketReady();
  assert.deepEqual(t.socketFrames, [{ type: "resume", conversation_id: "c_1", epoch: "e2", after: lastId }]);
});

test("a send that fails for a server error is reported with a retry, keeping its id", async () => {
  const t = setup({
    probe: async () => ({ state: "enabled" }),
    api: {
      post: async () => {
        throw Object.assign(new Error("The assistant is unavailable."), { kind: "server", status: 503 });
      },
    },
  });
  const { cmid } = t.chat.send("interviews");
  await flush();
  t.ES.last.emit("error");
  await flush();
  await flush();
  const note = t.notes.find((n) => n.retry);
  assert.match(note.message, /unavailable/);
  assert.equal(t.chat.current.turn(cmid).local, "failed");
  note.retry();
  await flush();
  assert.equal(cmidOf(t.ES.last), cmid);
});

test("past 100 queued messages the oldest is dropped, with a visible notice", () => {
  const t = setup();
  t.setOnline(false);
  t.chat.socketStateChanged("offline");
  const first = t.chat.send("message 0").cmid;
  for (let i = 1; i <= 100; i += 1) t.chat.send(`message ${i}`);
  assert.equal(t.chat.outbox.size, 100);
  const warning = t.notes.find((n) => n.level === "warning");
  assert.match(warning.message, /holds 100 messages at most; the oldest was dropped: “message 0”/);
  assert.equal(t.chat.current.turn(first), null, "and it is gone from the thread");
  assert.equal(t.chat.current.turns.length, 100);
});

test("notifications resume where the page stands: ready, then each one received", () => {
  const t = setup();
  assert.deepEqual(t.chat.socketAuthFields(), {}); // nothing known yet: the server starts from now
  t.chat.socketReady({ type: "ready", notifications_after: "100-0", notifications_epoch: "n1" });
  assert.deepEqual(t.chat.socketAuthFields(), { notifications: { after: "100-0", epoch: "n1" } });
  t.chat.socketFrame({ id: "120-0", type: "sync.finished", data: { added: 3 } });
  t.chat.socketFrame({ id: "110-0", type: "sync.finished", data: { added: 1 } }); // older: kept
  assert.deepEqual(t.chat.socketAuthFields(), { notifications: { after: "120-0", epoch: "n1" } });
  // Gone from the log: no conversation to refetch; the next `ready` says where it starts.
  const calls = t.apiCalls.length;
  t.chat.socketFrame({ type: "reset", stream: "notifications", epoch: "n2" });
  assert.equal(t.apiCalls.length, calls);
  t.chat.socketReady({ type: "ready", notifications_after: "130-0", notifications_epoch: "n2" });
  assert.deepEqual(t.chat.socketAuthFields(), { notifications: { after: "130-0", epoch: "n2" } });
});
