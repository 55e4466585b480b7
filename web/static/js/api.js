// The one fetch wrapper. Every request of the page goes through `Api.request`:
// errors come back classified (one class per kind below), retryable kinds are
// retried with exponential backoff and full jitter (honouring Retry-After, up
// to a cap), and a 401 refreshes the token once before asking to log in.

import { parseRetryAfter, retryDelay, REQUEST_BACKOFF } from "./backoff.js";

export class ApiError extends Error {
  constructor(kind, message, { status = 0, code = kind, field = null, retryAfterMs = null, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = "ApiError";
    this.kind = kind;
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfterMs = retryAfterMs;
    this.streamingDisabled = false;
  }

  /** Worth retrying automatically (for idempotent requests). */
  get retryable() {
    return RETRYABLE_KINDS.has(this.kind);
  }
}

const kindClass = (kind, name) =>
  class extends ApiError {
    constructor(message, details) {
      super(kind, message, details);
      this.name = name;
    }
  };

export const NetworkError = kindClass("network", "NetworkError");
export const TimeoutError = kindClass("timeout", "TimeoutError");
export const ValidationError = kindClass("validation", "ValidationError");
export const UnauthorizedError = kindClass("unauthorized", "UnauthorizedError");
export const ForbiddenError = kindClass("forbidden", "ForbiddenError");
export const NotFoundError = kindClass("not_found", "NotFoundError");
export const ConflictError = kindClass("conflict", "ConflictError");
export const TooLargeError = kindClass("too_large", "TooLargeError");
export const RateLimitedError = kindClass("rate_limited", "RateLimitedError");
export const ServerError = kindClass("server", "ServerError");
export const OfflineError = kindClass("offline", "OfflineError");
export const RequestError = kindClass("request", "RequestError"); // any other 4xx

export const RETRYABLE_KINDS = new Set(["network", "timeout", "rate_limited", "server"]);

const BY_STATUS = {
  400: ValidationError,
  401: UnauthorizedError,
  403: ForbiddenError,
  404: NotFoundError,
  409: ConflictError,
  413: TooLargeError,
  429: RateLimitedError,
};

const PLAIN_MESSAGES = {
  network: "The server cannot be reached.",
  timeout: "The server took too long to answer.",
  offline: "You are offline.",
  server: "The server had a problem.",
  rate_limited: "Too many requests; slow down a little.",
  too_large: "That is too large for the server.",
  unauthorized: "Your session has ended; log in again.",
};

/** The error class for an HTTP status (2xx/3xx are not errors: null). */
export function classForStatus(status) {
  if (status >= 500) return ServerError;
  if (BY_STATUS[status]) return BY_STATUS[status];
  if (status >= 400) return RequestError;
  return null;
}

/** Build the classified error from a non-OK response and its JSON error body. */
export function errorFromResponse(status, headers, body, nowMs = Date.now()) {
  const Kind = classForStatus(status) ?? ServerError;
  const detail = body && typeof body === "object" && body.error ? body.error : {};
  const kind = new Kind("x").kind;
  const message = detail.message || PLAIN_MESSAGES[kind] || `The server answered ${status}.`;
  const error = new Kind(message, {
    status,
    code: detail.code || kind,
    field: detail.field ?? null,
    retryAfterMs: parseRetryAfter(headers.get("Retry-After"), nowMs),
  });
  error.streamingDisabled = headers.get("X-Chat-Streaming-Disabled") === "1";
  return error;
}

const IDEMPOTENT_METHODS = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);

export class Api {
  /**
   * deps: fetch, tokens (TokenStore: token(), refresh(), requireLogin()),
   * isOnline() -> bool, sleep(ms, signal) -> Promise, random(), now(), onError(error, info),
   * timers (setTimeout/clearTimeout: the page's Lifetime), signal (aborts every request
   * at teardown).
   */
  constructor({
    fetch,
    tokens = null,
    isOnline = () => true,
    sleep,
    random = Math.random,
    now = Date.now,
    onError = () => {},
    timers = globalThis,
    signal = null,
  }) {
    this.timers = timers;
    this.signal = signal;
    this.fetch = fetch;
    this.tokens = tokens;
    this.isOnline = isOnline;
    this.sleep = sleep;
    this.random = random;
    this.now = now;
    this.onError = onError;
  }

  get(path, options = {}) {
    return this.request("GET", path, options);
  }

  post(path, body, options = {}) {
    return this.request("POST", path, { ...options, body });
  }

  /**
   * options: body (JSON), auth (default true), retries (default 3 for idempotent
   * requests, else 0), idempotent (a POST that is safe to repeat, e.g. one with a
   * client_message_id), timeoutMs (default 15 s), signal (the caller's abort), quiet
   * (do not report the error: the caller expects it, as a probe does), headers (extra
   * request headers), raw (a Blob/bytes body sent as it is, e.g. an upload chunk), full
   * (answer `{status, headers, body}` instead of the body: tus reads its headers).
   */
  async request(method, path, options = {}) {
    const idempotent = options.idempotent ?? IDEMPOTENT_METHODS.has(method);
    const retries = idempotent ? (options.retries ?? 3) : 0;
    const auth = options.auth ?? true;
    let refreshed = false;
    for (let attempt = 0; ; attempt += 1) {
      let error;
      try {
        return await this.once(method, path, options, auth);
      } catch (caught) {
        if (caught?.name === "AbortError") throw caught;
        error = caught;
      }
      if (error.kind === "unauthorized" && auth && this.tokens) {
        if (!refreshed && this.tokens.token()) {
          refreshed = true;
          try {
            await this.tokens.refresh();
            attempt -= 1; // the retry after a refresh is not a backoff step
            continue;
          } catch (refreshError) {
            // Only a refused refresh ends the session; an unreachable server does not.
            if (refreshError?.name !== "AuthRequiredError") throw this.report(error, method, path, options.quiet);
          }
        }
        this.tokens.requireLogin(error.message);
        throw this.report(error, method, path, options.quiet);
      }
      if (!error.retryable || attempt >= retries) throw this.report(error, method, path, options.quiet);
      const delay = retryDelay(attempt, { ...REQUEST_BACKOFF, retryAfterMs: error.retryAfterMs, random: this.random });
      if (delay == null) throw this.report(error, method, path, options.quiet);
      await this.sleep(delay, options.signal);
    }
  }

  report(error, method, path, quiet = false) {
    // Paths only, never query strings: stream tickets travel there.
    if (!quiet) this.onError(error, { method, path: String(path).split("?")[0] });
    return error;
  }

  async once(method, path, options, auth) {
    if (this.signal?.aborted) throw new DOMException("page closed", "AbortError");
    if (!this.isOnline()) throw new OfflineError(PLAIN_MESSAGES.offline);
    const headers = { Accept: "application/json", ...(options.headers ?? {}) };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    if (auth && this.tokens?.token()) headers.Authorization = `Bearer ${this.tokens.token()}`;
    const controller = new AbortController();
    let timedOut = false;
    const timer = this.timers.setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, options.timeoutMs ?? 15_000);
    const onAbort = () => controller.abort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    this.signal?.addEventListener("abort", onAbort, { once: true });
    let response;
    try {
      response = await this.fetch(path, {
        method,
        headers,
        body: options.raw !== undefined ? options.raw : options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: controller.signal,
        credentials: "same-origin",
      });
    } catch (cause) {
      if (options.signal?.aborted || this.signal?.aborted) throw cause;
      if (timedOut) throw new TimeoutError(PLAIN_MESSAGES.timeout, { cause });
      if (!this.isOnline()) throw new OfflineError(PLAIN_MESSAGES.offline, { cause });
      throw new NetworkError(PLAIN_MESSAGES.network, { cause });
    } finally {
      this.timers.clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      this.signal?.removeEventListener("abort", onAbort);
    }
    const text = await response.text().catch(() => "");
    let body = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = null; // an HTML error page from a proxy: classified by status alone
      }
    }
    if (response.ok) return options.full ? { status: response.status, headers: response.headers, body } : body;
    throw errorFromResponse(response.status, response.headers, body, this.now());
  }
}
