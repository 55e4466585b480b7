import assert from "node:assert/strict";
import { test } from "node:test";

import { Backoff, fullJitter, parseRetryAfter, retryDelay, SOCKET_BACKOFF } from "../../web/static/js/backoff.js";

test("full jitter stays within [0, min(cap, base * 2^attempt))", () => {
  for (let attempt = 0; attempt < 12; attempt += 1) {
    const ceiling = Math.min(20_000, 500 * 2 ** attempt);
    assert.equal(fullJitter(attempt, { random: () => 0 }), 0);
    const top = fullJitter(attempt, { random: () => 0.999999 });
    assert.ok(top < ceiling && top >= ceiling - 1, `attempt ${attempt}: ${top} vs ${ceiling}`);
  }
  assert.ok(fullJitter(50, { random: () => 0.999999 }) < 20_000, "capped even for huge attempts");
});

test("full jitter spreads clients out instead of moving them in step", () => {
  const delays = new Set();
  for (let i = 0; i < 200; i += 1) delays.add(fullJitter(6));
  assert.ok(delays.size > 150, `only ${delays.size} distinct delays of 200`);
  for (const delay of delays) assert.ok(delay >= 0 && delay < 20_000);
});

test("the socket's backoff uses base 0.5 s and cap 20 s and resets", () => {
  assert.equal(SOCKET_BACKOFF.baseMs, 500);
  assert.equal(SOCKET_BACKOFF.capMs, 20_000);
  assert.equal(SOCKET_BACKOFF.stableMs, 10_000);
  const backoff = new Backoff({ random: () => 0.999999 });
  const delays = Array.from({ length: 8 }, () => backoff.next());
  assert.deepEqual(
    delays.map((d) => Math.ceil(d / 10) * 10),
    [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000],
  );
  backoff.reset();
  assert.ok(backoff.next() < 500);
});

test("Retry-After is read as seconds or as an HTTP date", () => {
  assert.equal(parseRetryAfter("5"), 5000);
  assert.equal(parseRetryAfter("0"), 0);
  const now = Date.parse("2024-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("Mon, 01 Jan 2024 00:00:30 GMT", now), 30_000);
  assert.equal(parseRetryAfter("Sun, 31 Dec 2023 00:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter("soon"), null);
});

test("a retry waits at least Retry-After, and gives up when it is beyond the cap", () => {
  assert.equal(retryDelay(0, { retryAfterMs: 5000, random: () => 0 }), 5000);
  assert.ok(retryDelay(0, { retryAfterMs: 100, random: () => 0.5 }) >= 100);
  assert.equal(retryDelay(0, { retryAfterMs: 60_000 }), null, "60 s is longer than the 10 s cap");
  assert.ok(retryDelay(3, { random: () => 0.999 }) < 300 * 8);
});
