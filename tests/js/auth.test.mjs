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
      const body = { access_token: `t${n}`, expires_in: 900, refresh_token: `r${n}`, refresh_expires_in: 86_400, user: { id: "u_1", email: "a@b.c" } };
      return new Response(JSON.stringify(body), { status });
    },
  });
  return { tokens, calls };
}

const SESSION = { access_token: "t0", expires_in: 900, refresh_token: "r0", refresh_expires_in: 86_400, user: {} };

test("refresh sends the refresh token (not the access token) and keeps the new pair; concurrent calls share it", async () => {
  const { tokens, calls } = store();
  tokens.set(SESSION);
  await Promise.all([tokens.refresh(), tokens.refresh()]);
  assert.equal(calls.length, 1); // a refresh token works once: two calls would revoke the session
  assert.equal(calls[0].path, "/api/auth/refresh");
  assert.equal(calls[0].init.headers.Authorization, undefined);
  assert.deepEqual(JSON.parse(calls[0].init.body), { refresh_token: "r0" });
  assert.equal(tokens.token(), "t1");
  await tokens.refresh();
  assert.deepEqual(JSON.parse(calls[1].init.body), { refresh_token: "r1" }); // rotated
});

test("a fresh token before each connect: an old or expired one is refreshed until the session ends", async () => {
  let now = 1_000_000;
  const { tokens, calls } = store({ now: () => now });
  tokens.set(SESSION);
  assert.equal(await tokens.freshToken(), "t0");
  now += 120_000;
  assert.equal(await tokens.freshToken(), "t1");
  assert.equal(calls.length, 1);
  now += 901_000; // the access token expired: the refresh token still works
  assert.equal(await tokens.freshToken(), "t2");
  now += 86_401_000; // past the session's absolute end: log in again
  await assert.rejects(tokens.freshToken(), AuthRequiredError);
});

test("a refused refresh means logging in again", async () => {
  const { tokens } = store({ status: 401 });
  let reason = null;
  tokens.onLogout = (why) => (reason = why);
  tokens.set(SESSION);
  await assert.rejects(tokens.refresh(), AuthRequiredError);
  tokens.requireLogin("Session over");
  assert.equal(reason, "Session over");
  assert.equal(tokens.token(), null);
});

test("logout ends the session on the server and forgets it here", async () => {
  const calls = [];
  const tokens = new TokenStore({
    storage: new MemoryStorage(),
    fetch: async (path, init) => {
      calls.push({ path, init });
      return new Response(null, { status: 204 });
    },
  });
  tokens.set(SESSION);
  await tokens.logout();
  assert.equal(calls.length, 1);
  assert.equal(calls[0].path, "/api/auth/logout");
  assert.equal(calls[0].init.headers.Authorization, "Bearer t0");
  assert.equal(tokens.token(), null);
  await tokens.logout(); // nothing to end: no call
  assert.equal(calls.length, 1);
});
