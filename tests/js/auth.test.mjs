import assert from "node:assert/strict";
import { test } from "node:test";

import { AuthRequiredError, TokenStore } from "../../web/static/js/auth.js";
import { MemoryStorage } from "./fakes.mjs";

function store({ status = 200, now } = {}) {
  const calls = [];
  let n = 0;
  const tokens = new TokenStore({
    storage: new MemoryStorage(),
    now: now ?? (() => 1_000_000),
    fetch: async (path, init) => {
      calls.push({ path, init });
      n += 1;
      return new Response(JSON.stringify({ access_token: `t${n}`, expires_in: 900, user: { id: "u_1", email: "a@b.c" } }), { status });
    },
  });
  return { tokens, calls };
}

test("refresh sends the current token and keeps the new one; concurrent calls share it", async () => {
  const { tokens, calls } = store();
  tokens.set({ access_token: "t0", expires_in: 900, user: {} });
  await Promise.all([tokens.refresh(), tokens.refresh()]);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].path, "/api/auth/refresh");
  assert.equal(calls[0].init.headers.Authorization, "Bearer t0");
  assert.equal(tokens.token(), "t1");
});

test("a fresh token before each connect: an old one is refreshed, an expired one cannot be", async () => {
  let now = 1_000_000;
  const { tokens, calls } = store({ now: () => now });
  tokens.set({ access_token: "t0", expires_in: 900, user: {} });
  assert.equal(await tokens.freshToken(), "t0");
  now += 120_000;
  assert.equal(await tokens.freshToken(), "t1");
  assert.equal(calls.length, 1);
  now += 901_000;
  await assert.rejects(tokens.freshToken(), AuthRequiredError);
});

test("a refused refresh means logging in again", async () => {
  const { tokens } = store({ status: 401 });
  let reason = null;
  tokens.onLogout = (why) => (reason = why);
  tokens.set({ access_token: "t0", expires_in: 900, user: {} });
  await assert.rejects(tokens.refresh(), AuthRequiredError);
  tokens.requireLogin("Session over");
  assert.equal(reason, "Session over");
  assert.equal(tokens.token(), null);
});
