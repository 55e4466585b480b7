import assert from "node:assert/strict";
import { test } from "node:test";

import { Conversation } from "../../web/static/js/conversation.js";
import { answerEvents } from "./fakes.mjs";

test("an answer builds up from its events and ends done", () => {
  const c = new Conversation("c_1");
  c.addLocal({ cmid: "m_1", q: "interviews", windowDays: 30 });
  const events = answerEvents("c_1", "m_1", { text: "I found 1 email [1]" });
  const terminals = events.map((e) => c.apply(e).terminal).filter(Boolean);
  assert.deepEqual(terminals, ["m_1"]);
  const [turn] = c.view();
  assert.equal(turn.status, "done");
  assert.equal(turn.text, "I found 1 email [1]");
  assert.equal(turn.citations.length, 1);
  assert.equal(turn.search.window_days, 30);
  assert.equal(turn.local, null, "the echo was confirmed by the question event");
  assert.equal(c.turns.length, 1);
});

test("an event delivered twice (SSE and WebSocket) is applied once", () => {
  const c = new Conversation("c_1");
  const events = answerEvents("c_1", "m_1", { text: "abcdefgh" });
  for (const event of events) {
    c.apply(event);
    c.apply(event);
  }
  for (const event of events) c.apply(event); // a whole replay on top
  assert.equal(c.view()[0].text, "abcdefgh");
  assert.equal(c.turns.length, 1);
  assert.equal(c.cursor.duplicates, events.length * 2);
});

test("a newer question supersedes the running answer, which then renders nothing", () => {
  const c = new Conversation("c_1");
  const first = answerEvents("c_1", "m_1", { startMs: 1000, windowDays: 30 });
  const second = answerEvents("c_1", "m_2", { startMs: 2000, windowDays: 7 });
  c.apply(first[0]);
  c.apply(first[1]);
  c.apply(second[0]); // the newer question is in the log before m_1's end
  c.apply({ ...first.at(-1), id: "2500-0", data: { client_message_id: "m_1", cancelled: true } });
  for (const event of answerEvents("c_1", "m_2", { startMs: 3000 }).slice(1)) c.apply(event);
  const [old, current] = c.view();
  assert.equal(old.status, "superseded");
  assert.equal(old.text, "");
  assert.equal(current.status, "done");
  assert.equal(c.view().filter((t) => t.status === "done").length, 1);
});

test("a late, not-cancelled done after the newer question stays superseded (log order decides)", () => {
  const c = new Conversation("c_1");
  const first = answerEvents("c_1", "m_1", { startMs: 1000 });
  const second = answerEvents("c_1", "m_2", { startMs: 2000 });
  for (const event of first.slice(0, -1)) c.apply(event);
  c.apply(second[0]);
  c.apply({ ...first.at(-1), id: "2000-50" });
  assert.equal(c.turn("m_1").answer.status, "superseded");
});

test("superseded locally, an answer that finished first is shown after all", () => {
  const c = new Conversation("c_1");
  const first = answerEvents("c_1", "m_1");
  for (const event of first.slice(0, -1)) c.apply(event);
  c.addLocal({ cmid: "m_2", q: "again", windowDays: 7 });
  c.supersedeRunning("m_2");
  assert.equal(c.turn("m_1").answer.status, "superseded");
  c.apply(first.at(-1)); // its done was already in the log before m_2's question
  assert.equal(c.turn("m_1").answer.status, "done");
});

test("a JSON answer renders like a streamed one and its replay changes nothing", () => {
  const c = new Conversation("c_1");
  c.addLocal({ cmid: "m_1", q: "interviews", windowDays: 30 });
  const events = answerEvents("c_1", "m_1", { text: "Found it [1]" });
  const done = events.at(-1).data;
  assert.equal(c.applyAnswer("m_1", done), "m_1");
  const before = JSON.stringify(c.view());
  for (const event of events) c.apply(event);
  assert.equal(JSON.stringify(c.view()), before);
});

test("reset forgets the log but keeps messages not yet sent", () => {
  const c = new Conversation("c_1");
  for (const event of answerEvents("c_1", "m_1")) c.apply(event);
  c.addLocal({ cmid: "m_9", q: "queued", windowDays: 30, status: "queued" });
  c.reset("epoch2");
  assert.deepEqual(c.turns.map((t) => t.cmid), ["m_9"]);
  assert.equal(c.lastId, "0");
  for (const event of answerEvents("c_1", "m_1")) c.apply(event);
  assert.deepEqual(c.turns.map((t) => t.cmid), ["m_9", "m_1"]);
});

test("an error event ends the answer with the server's message", () => {
  const c = new Conversation("c_1");
  const [question] = answerEvents("c_1", "m_1");
  c.apply(question);
  const { terminal } = c.apply({ id: "1000-9", type: "error", conversation_id: "c_1", data: { client_message_id: "m_1", code: "assistant_failed", message: "The assistant failed to answer." } });
  assert.equal(terminal, "m_1");
  assert.equal(c.view()[0].status, "error");
  assert.match(c.view()[0].error.message, /failed/);
});
