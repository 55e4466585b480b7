import assert from "node:assert/strict";
import { test } from "node:test";

import { ChatSocket } from "../../web/static/js/socket.js";
import { ConnectionStats } from "../../web/static/js/telemetry.js";
import { FakeClock, fakeWebSocketClass, flush } from "./fakes.mjs";

function setup({ random = () => 0.999999, getToken, authFields } = {}) {
  const clock = new FakeClock();
  const WS = fakeWebSocketClass();
  const states = [];
  const frames = [];
  const tokenCalls = [];
  const authFailures = [];
  let online = true;
  const stats = new ConnectionStats();
  const socket = new ChatSocket({
    url: "ws://x/ws",
    WebSocketImpl: WS,
    getToken:
      getToken ??
      (async ({ refresh }) => {
        tokenCalls.push(refresh);
        return `token${tokenCalls.length}`;
      }),
    timers: clock,
    random,
    isOnline: () => online,
    stats,
    onState: (state, info) => states.push({ state, ...info }),
    onFrame: (frame) => frames.push(frame),
    onAuthFailed: (reason) => authFailures.push(reason),
    authFields,
  });
  const connect = async () => {
    await flush();
    const ws = WS.last;
    ws.serverOpen();
    ws.serverSend({ type: "ready", heartbeat_seconds: 30 });
    return ws;
  };
  return { clock, WS, socket, states, frames, tokenCalls, authFailures, stats, connect, setOnline: (v) => (online = v) };
}

test("idle -> connecting -> open, authenticating with a fresh token first", async () => {
  const t = setup();
  assert.equal(t.socket.state, "idle");
  t.socket.start();
  assert.equal(t.socket.state, "connecting");
  const ws = await t.connect();
  assert.deepEqual(ws.sent[0], { type: "auth", token: "token1" });
  assert.equal(t.socket.state, "open");
  assert.deepEqual(t.tokenCalls, [false]);
});

test("retryable closes reconnect with full-jitter backoff that grows to the cap", async () => {
  const t = setup();
  t.socket.start();
  await t.connect();
  const delays = [];
  for (const code of [1006, 1001, 1011, 1012, 1013, 1006, 1006, 1006]) {
    t.WS.last.serverClose(code);
    assert.equal(t.socket.state, "reconnecting", String(code));
    delays.push(t.clock.nextDelay());
    t.clock.advance(t.clock.nextDelay());
    assert.equal(t.socket.state, "connecting");
    await flush();
    t.WS.last.serverOpen(); // opens but never gets ready: still failing
  }
  assert.deepEqual(
    delays.map((d) => Math.ceil(d / 10) * 10),
    [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000],
  );
  assert.equal(t.stats.snapshot().reconnectAttempts, 8);
  assert.equal(t.states.find((s) => s.state === "reconnecting").nextRetryAt, 1_000_000 + delays[0]);
});

test("the backoff resets after 10 s of stable connection", async () => {
  const t = setup();
  t.socket.start();
  await t.connect();
  for (let i = 0; i < 4; i += 1) {
    t.WS.last.serverClose(1006);
    t.clock.advance(t.clock.nextDelay());
    await t.connect();
  }
  assert.equal(t.socket.backoff.attempt, 4);
  t.clock.advance(10_000);
  assert.equal(t.socket.backoff.attempt, 0);
  t.WS.last.serverClose(1006);
  assert.ok(t.clock.nextDelay() < 500);
});

test("an advice frame's retry_after_ms is the floor of the next wait", async () => {
  const t = setup({ random: () => 0 });
  t.socket.start();
  const ws = await t.connect();
  ws.serverSend({ type: "advice", why: "restart", retry_after_ms: 1000 });
  ws.serverClose(1012);
  assert.equal(t.clock.nextDelay(), 1000);
});

for (const code of [4401, 1008]) {
  test(`close ${code}: one retry with a new token, then closed`, async () => {
    const t = setup();
    t.socket.start();
    await t.connect();
    t.WS.last.serverClose(code);
    assert.equal(t.socket.state, "reconnecting");
    t.clock.advance(t.clock.nextDelay());
    await flush();
    assert.deepEqual(t.tokenCalls, [false, true], "the reconnect asked for a new token");
    t.WS.last.serverOpen();
    t.WS.last.serverClose(code);
    assert.equal(t.socket.state, "closed");
    assert.equal(t.clock.pending, 0);
    assert.equal(t.authFailures.length, 1);
  });
}

test("no token at all (session over) means closed, not a retry loop", async () => {
  const t = setup({
    getToken: async () => {
      const error = new Error("log in");
      error.name = "AuthRequiredError";
      throw error;
    },
  });
  t.socket.start();
  await flush();
  assert.equal(t.socket.state, "closed");
  assert.deepEqual(t.authFailures, ["not_authenticated"]);
});

test("an unreachable token refresh counts as a failed attempt and is retried", async () => {
  let fail = true;
  const t = setup({
    getToken: async () => {
      if (fail) throw Object.assign(new Error("network"), { kind: "network" });
      return "tok";
    },
  });
  t.socket.start();
  await flush();
  assert.equal(t.socket.state, "reconnecting");
  fail = false;
  t.clock.advance(t.clock.nextDelay());
  await t.connect();
  assert.equal(t.socket.state, "open");
});

test("events from a stale socket are dropped", async () => {
  const t = setup();
  t.socket.start();
  const old = await t.connect();
  old.serverClose(1006);
  t.clock.advance(t.clock.nextDelay());
  const fresh = await t.connect();
  old.serverSend({ type: "delta", id: "1-0" });
  old.serverClose(1006);
  fresh.serverSend({ type: "delta", id: "2-0" });
  assert.deepEqual(t.frames.map((f) => f.id), ["2-0"]);
  assert.equal(t.socket.state, "open");
});

test("offline drops the socket and waits; online reconnects at once", async () => {
  const t = setup();
  t.socket.start();
  const ws = await t.connect();
  t.setOnline(false);
  t.socket.offline();
  assert.equal(t.socket.state, "offline");
  assert.ok(ws.closedWith);
  ws.serverClose(1006); // the browser's late close event changes nothing
  assert.equal(t.socket.state, "offline");
  assert.equal(t.clock.pending, 0, "no retry timer while offline");
  t.setOnline(true);
  t.socket.online();
  assert.equal(t.socket.state, "connecting");
  await t.connect();
  assert.equal(t.socket.state, "open");
});

test("a failure while the browser is offline goes to offline, not to a retry", async () => {
  const t = setup();
  t.socket.start();
  await t.connect();
  t.setOnline(false);
  t.WS.last.serverClose(1006);
  assert.equal(t.socket.state, "offline");
  assert.equal(t.clock.pending, 0);
});

test("application heartbeat: server pings are answered, a late pong drops the connection", async () => {
  const t = setup();
  t.socket.start();
  const ws = await t.connect();
  ws.serverSend({ type: "ping" });
  assert.deepEqual(ws.sent.at(-1), { type: "pong" });
  t.clock.advance(15_000);
  assert.deepEqual(ws.sent.at(-1), { type: "ping" });
  ws.serverSend({ type: "pong" });
  t.clock.advance(15_000);
  assert.deepEqual(ws.sent.at(-1), { type: "ping" });
  t.clock.advance(10_000); // no pong this time
  assert.equal(ws.closedWith.code, 4000);
  assert.equal(t.socket.state, "reconnecting");
  assert.equal(t.stats.snapshot().closeCodes["4000"], 1);
});

test("close codes, reconnect attempts and connection durations are counted", async () => {
  const t = setup();
  t.socket.start();
  await t.connect();
  t.clock.advance(3000);
  t.WS.last.serverClose(1012);
  t.clock.advance(t.clock.nextDelay());
  await t.connect();
  t.clock.advance(1000);
  t.WS.last.serverClose(1006);
  const stats = t.stats.snapshot();
  assert.deepEqual(stats.closeCodes, { 1012: 1, 1006: 1 });
  assert.equal(stats.reconnectAttempts, 2);
  assert.deepEqual(stats.recentDurationsMs, [3000, 1000]);
});

test("stop closes for good and leaves no timer behind", async () => {
  const t = setup();
  t.socket.start();
  const ws = await t.connect();
  t.socket.stop();
  assert.equal(t.socket.state, "closed");
  assert.deepEqual(ws.closedWith, { code: 1000, reason: "client closing" });
  assert.equal(t.clock.pending, 0);
  ws.serverClose(1000);
  assert.equal(t.socket.state, "closed");
  assert.equal(t.socket.send({ type: "ping" }), false);
});

test("stop during a connect attempt wins over the attempt", async () => {
  const t = setup();
  t.socket.start();
  t.socket.stop();
  await flush();
  assert.equal(t.WS.instances.length, 0);
  assert.equal(t.socket.state, "closed");
});

test("the auth frame carries the page's resume point, and its own type and token win", async () => {
  let at = { notifications: { after: "5-0", epoch: "e1" } };
  const t = setup({ authFields: () => ({ ...at, type: "bogus", token: "bogus" }) });
  t.socket.start();
  const ws = await t.connect();
  assert.deepEqual(ws.sent[0], {
    type: "auth",
    token: "token1",
    notifications: { after: "5-0", epoch: "e1" },
  });
  at = { notifications: { after: "9-0", epoch: "e1" } };
  ws.serverClose(1012);
  t.clock.advance(60_000);
  const again = await t.connect();
  assert.deepEqual(again.sent[0].notifications, { after: "9-0", epoch: "e1" }); // asked anew
});
