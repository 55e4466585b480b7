import assert from "node:assert/strict";
import { test } from "node:test";

import { compareIds, isEventId, newId, SeenIds, StreamCursor } from "../../web/static/js/dedup.js";

test("ids compare as numbers, not text", () => {
  assert.equal(compareIds("9-0", "10-0"), -1);
  assert.equal(compareIds("10-2", "10-10"), -1);
  assert.equal(compareIds("10-1", "10-1"), 0);
  assert.equal(compareIds("11-0", "10-18446744073709551615"), 1);
  assert.equal(compareIds("0", "1-0"), -1);
});

test("a cursor applies each event once, whichever transport brings it first", () => {
  const cursor = new StreamCursor();
  const sse = ["5-0", "5-1", "6-0"];
  const ws = ["5-0", "5-1", "6-0", "7-0"];
  const applied = [];
  for (const id of [sse[0], ws[0], ws[1], sse[1], sse[2], ws[2], ws[3]]) if (cursor.accept(id)) applied.push(id);
  assert.deepEqual(applied, ["5-0", "5-1", "6-0", "7-0"]);
  assert.equal(cursor.duplicates, 3);
  assert.equal(cursor.accept("not an id"), false);
});

test("seen ids are bounded", () => {
  const seen = new SeenIds(3);
  assert.ok(seen.accept("1-0") && seen.accept("2-0") && seen.accept("3-0"));
  assert.equal(seen.accept("2-0"), false);
  seen.accept("4-0");
  assert.equal(seen.ids.size, 3);
  assert.ok(seen.accept("1-0"), "the oldest was forgotten");
});

test("new ids match the server's id rule", () => {
  const id = newId("m_");
  assert.match(id, /^m_[0-9a-f]{16}$/);
  assert.notEqual(id, newId("m_"));
  assert.ok(isEventId("1700000000000-0") && !isEventId("1-x"));
});
