import assert from "node:assert/strict";
import { test } from "node:test";

import { Outbox, OUTBOX_LIMIT } from "../../web/static/js/queue.js";

test("the outbox holds 100 messages and drops the oldest, saying so", () => {
  assert.equal(OUTBOX_LIMIT, 100);
  const dropped = [];
  const outbox = new Outbox({ onDrop: (item) => dropped.push(item) });
  for (let i = 0; i < 100; i += 1) assert.equal(outbox.push({ cmid: `m_${i}` }), null);
  assert.equal(outbox.size, 100);
  assert.deepEqual(outbox.push({ cmid: "m_100" }), { cmid: "m_0" });
  assert.deepEqual(dropped, [{ cmid: "m_0" }]);
  assert.equal(outbox.size, 100);
  assert.equal(outbox.peek().cmid, "m_1");
});

test("messages go out in order, and a failed one goes back to the front", () => {
  const outbox = new Outbox({ limit: 3 });
  outbox.push({ cmid: "a" });
  outbox.push({ cmid: "b" });
  const first = outbox.shift();
  outbox.push({ cmid: "c" });
  outbox.unshift(first);
  assert.deepEqual(outbox.items.map((i) => i.cmid), ["a", "b", "c"]);
  assert.ok(outbox.has("b") && outbox.remove("b") && !outbox.has("b"));
  outbox.clear();
  assert.equal(outbox.shift(), null);
});

test("putting back past the limit still drops the oldest", () => {
  const dropped = [];
  const outbox = new Outbox({ limit: 2, onDrop: (item) => dropped.push(item.cmid) });
  const first = { cmid: "a" };
  outbox.push({ cmid: "b" });
  outbox.push({ cmid: "c" });
  outbox.unshift(first);
  assert.deepEqual(dropped, ["a"]);
  assert.deepEqual(outbox.items.map((i) => i.cmid), ["b", "c"]);
});
