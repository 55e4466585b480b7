import assert from "node:assert/strict";
import { test } from "node:test";

import { ErrorLog } from "../../web/static/js/errorlog.js";
import { Lifetime } from "../../web/static/js/lifetime.js";
import { UxTelemetry } from "../../web/static/js/telemetry.js";
import { FakeClock, flush, MemoryStorage } from "./fakes.mjs";

test("chat opened once; a heartbeat every 30 s only while visible", async () => {
  const clock = new FakeClock();
  const doc = { visibilityState: "visible" };
  const posts = [];
  const ux = new UxTelemetry({ post: async (path) => posts.push(path), timers: clock, doc });
  ux.start();
  ux.start();
  await flush();
  assert.deepEqual(posts, ["/api/ux/chat/opened"]);
  clock.advance(90_000);
  await flush();
  assert.equal(posts.filter((p) => p === "/api/ux/heartbeat").length, 3);
  doc.visibilityState = "hidden";
  ux.visibilityChanged();
  clock.advance(120_000);
  await flush();
  assert.equal(posts.filter((p) => p === "/api/ux/heartbeat").length, 3, "no heartbeat while hidden");
  doc.visibilityState = "visible";
  ux.visibilityChanged();
  clock.advance(30_000);
  await flush();
  assert.equal(posts.filter((p) => p === "/api/ux/heartbeat").length, 4);
  ux.stop();
  assert.equal(clock.pending, 0);
});

test("a failing telemetry call is logged, never thrown", async () => {
  const clock = new FakeClock();
  const errors = [];
  const ux = new UxTelemetry({
    post: async () => {
      throw new Error("429");
    },
    timers: clock,
    doc: { visibilityState: "visible" },
    onError: (e) => errors.push(e.message),
  });
  ux.start();
  await flush();
  assert.deepEqual(errors, ["429"]);
  ux.stop();
});

test("teardown: no timer or listener survives the lifetime", async () => {
  const clock = new FakeClock();
  const life = new Lifetime(clock);
  const target = new EventTarget();
  let heard = 0;
  life.listen(target, "online", () => (heard += 1));
  life.setTimeout(() => {}, 1000);
  life.setInterval(() => {}, 1000);
  const sleeping = life.sleep(5000);
  assert.equal(life.activeTimers, 3);
  target.dispatchEvent(new Event("online"));
  life.dispose();
  assert.equal(life.activeTimers, 0);
  assert.equal(clock.pending, 0);
  target.dispatchEvent(new Event("online"));
  assert.equal(heard, 1, "the listener is gone");
  await assert.rejects(sleeping, { name: "AbortError" });
  assert.equal(life.setTimeout(() => {}, 10), null, "nothing new starts after teardown");
});

test("the last 50 errors are kept for support, without query strings", () => {
  const storage = new MemoryStorage();
  const log = new ErrorLog({ storage, now: () => Date.parse("2024-05-01T10:42:00Z") });
  for (let i = 0; i < 60; i += 1) log.add(Object.assign(new Error(`boom ${i}`), { kind: "server", status: 503 }), { path: "/api/chat/stream?ticket=secret", method: "GET" });
  const entries = log.entries();
  assert.equal(entries.length, 50);
  assert.equal(entries[0].message, "boom 10");
  assert.equal(entries.at(-1).path, "/api/chat/stream");
  assert.ok(!storage.getItem("mailchat.errors").includes("secret"));
  assert.equal(entries.at(-1).at, "2024-05-01T10:42:00.000Z");
});
