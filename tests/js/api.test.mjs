import assert from "node:assert/strict";
import { test } from "node:test";

import {
  Api,
  ApiError,
  ConflictError,
  ForbiddenError,
  NetworkError,
  NotFoundError,
  OfflineError,
  RateLimitedError,
  RequestError,
  ServerError,
  TimeoutError,
  TooLargeError,
  UnauthorizedError,
  ValidationError,
  classForStatus,
} from "../../web/static/js/api.js";

const json = (status, body, headers = {}) =>
  new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });

function apiWith(responses, extra = {}) {
  const calls = [];
  const sleeps = [];
  const queue = [...responses];
  const api = new Api({
    fetch: async (path, init) => {
      calls.push({ path, init });
      const next = queue.shift();
      if (next instanceof Error) throw next;
      return typeof next === "function" ? next(init) : next;
    },
    sleep: async (ms) => sleeps.push(ms),
    random: () => 0.5,
    ...extra,
  });
  return { api, calls, sleeps };
}

test("every status maps to its error class", () => {
  const expected = {
    400: ValidationError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: TooLargeError,
    429: RateLimitedError,
    500: ServerError,
    502: ServerError,
    503: ServerError,
    504: ServerError,
    405: RequestError,
    422: RequestError,
  };
  for (const [status, cls] of Object.entries(expected)) assert.equal(classForStatus(Number(status)), cls, status);
  assert.equal(classForStatus(200), null);
});

test("errors carry kind, status, the server's code, message and field", async () => {
  const { api } = apiWith([json(400, { error: { code: "invalid_field", message: "'q' must be a non-empty string.", field: "q" } })]);
  const error = await api.post("/api/chat", { q: "" }).catch((e) => e);
  assert.ok(error instanceof ValidationError && error instanceof ApiError);
  assert.equal(error.kind, "validation");
  assert.equal(error.status, 400);
  assert.equal(error.code, "invalid_field");
  assert.equal(error.field, "q");
  assert.match(error.message, /non-empty/);
  assert.equal(error.retryable, false);
});

test("network failures, timeouts and offline are told apart", async () => {
  let online = true;
  const { api } = apiWith([new TypeError("Failed to fetch"), new TypeError("Failed to fetch")], { isOnline: () => online });
  assert.ok((await api.post("/x", {}).catch((e) => e)) instanceof NetworkError);
  online = false;
  assert.ok((await api.get("/x").catch((e) => e)) instanceof OfflineError, "offline is not even tried");

  const hanging = new Api({
    fetch: (path, init) => new Promise((_, reject) => init.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")))),
    sleep: async () => {},
  });
  const error = await hanging.get("/slow", { timeoutMs: 20, retries: 0 }).catch((e) => e);
  assert.ok(error instanceof TimeoutError, String(error));
});

test("retryable errors are retried with backoff, honouring Retry-After", async () => {
  const { api, calls, sleeps } = apiWith([json(503, { error: { code: "x", message: "busy" } }, { "Retry-After": "2" }), json(429, {}, { "Retry-After": "1" }), json(200, { ok: 1 })]);
  assert.deepEqual(await api.get("/api/conversations"), { ok: 1 });
  assert.equal(calls.length, 3);
  assert.ok(sleeps[0] >= 2000 && sleeps[1] >= 1000, JSON.stringify(sleeps));
});

test("retries are capped and only for idempotent requests", async () => {
  const five = Array.from({ length: 5 }, () => json(502, {}));
  const { api, calls } = apiWith(five);
  assert.ok((await api.get("/x", { retries: 2 }).catch((e) => e)) instanceof ServerError);
  assert.equal(calls.length, 3);

  const post = apiWith([json(503, {}), json(200, {})]);
  assert.ok((await post.api.post("/x", {}).catch((e) => e)) instanceof ServerError);
  assert.equal(post.calls.length, 1, "a plain POST is never repeated");

  const safePost = apiWith([json(503, {}), json(200, { done: true })]);
  assert.deepEqual(await safePost.api.post("/api/chat", {}, { idempotent: true }), { done: true });
});

test("a Retry-After beyond the cap is not waited out silently", async () => {
  const { api, calls, sleeps } = apiWith([json(429, {}, { "Retry-After": "120" }), json(200, {})]);
  const error = await api.get("/x").catch((e) => e);
  assert.ok(error instanceof RateLimitedError);
  assert.equal(error.retryAfterMs, 120_000);
  assert.equal(calls.length, 1);
  assert.deepEqual(sleeps, []);
});

test("validation, not-found and conflict errors are not retried", async () => {
  for (const status of [400, 403, 404, 409, 413]) {
    const { api, calls } = apiWith([json(status, {}), json(200, {})]);
    await api.get("/x").catch(() => {});
    assert.equal(calls.length, 1, String(status));
  }
});

test("a 401 refreshes the token once and repeats the request with the new token", async () => {
  let token = "old";
  const tokens = { token: () => token, refresh: async () => (token = "new"), requireLogin: () => assert.fail("no login needed") };
  const { api, calls } = apiWith([json(401, {}), json(200, { ok: true })], { tokens });
  assert.deepEqual(await api.get("/api/conversations"), { ok: true });
  assert.equal(calls[0].init.headers.Authorization, "Bearer old");
  assert.equal(calls[1].init.headers.Authorization, "Bearer new");
});

test("a second 401, or a failed refresh, asks to log in", async () => {
  let logins = 0;
  let refreshes = 0;
  const tokens = { token: () => "t", refresh: async () => (refreshes += 1), requireLogin: () => (logins += 1) };
  const { api, calls } = apiWith([json(401, {}), json(401, {})], { tokens });
  assert.ok((await api.get("/x").catch((e) => e)) instanceof UnauthorizedError);
  assert.equal(refreshes, 1);
  assert.equal(calls.length, 2);
  assert.equal(logins, 1);

  const refused = Object.assign(new Error("expired"), { name: "AuthRequiredError" });
  const failing = { token: () => "t", refresh: async () => Promise.reject(refused), requireLogin: () => (logins += 1) };
  const second = apiWith([json(401, {})], { tokens: failing });
  assert.ok((await second.api.get("/x").catch((e) => e)) instanceof UnauthorizedError);
  assert.equal(logins, 2);
});

test("the streaming canary is recognised, and errors are reported without query strings", async () => {
  const reported = [];
  const { api } = apiWith([json(503, { error: { code: "streaming_disabled", message: "off" } }, { "X-Chat-Streaming-Disabled": "1", "Retry-After": "60" })], {
    onError: (error, info) => reported.push(info),
  });
  const error = await api.get("/api/chat/stream?ticket=secret", { retries: 0 }).catch((e) => e);
  assert.equal(error.streamingDisabled, true);
  assert.deepEqual(reported, [{ method: "GET", path: "/api/chat/stream" }]);
  const quiet = apiWith([json(400, {})], { onError: () => assert.fail("quiet") });
  await quiet.api.get("/x", { quiet: true }).catch(() => {});
});

test("a proxy's HTML error page is still classified by status", async () => {
  const { api } = apiWith([new Response("<html>Bad Gateway</html>", { status: 502 })]);
  const error = await api.get("/x", { retries: 0 }).catch((e) => e);
  assert.ok(error instanceof ServerError);
  assert.match(error.message, /server/i);
});

test("the caller's abort is not an error to classify", async () => {
  const controller = new AbortController();
  const api = new Api({
    fetch: (path, init) => new Promise((_, reject) => init.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")))),
    sleep: async () => {},
  });
  const pending = api.get("/x", { signal: controller.signal });
  controller.abort();
  const error = await pending.catch((e) => e);
  assert.equal(error.name, "AbortError");
});

test("a refresh that cannot reach the server keeps the session", async () => {
  let logins = 0;
  const tokens = { token: () => "t", refresh: async () => Promise.reject(Object.assign(new Error("down"), { kind: "network" })), requireLogin: () => (logins += 1) };
  const { api } = apiWith([json(401, {})], { tokens });
  assert.ok((await api.get("/x").catch((e) => e)) instanceof UnauthorizedError);
  assert.equal(logins, 0);
});
