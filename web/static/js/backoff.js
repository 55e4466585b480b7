// Exponential backoff with full jitter (AWS architecture blog, "Exponential
// Backoff And Jitter"): the delay is uniform in [0, min(cap, base * 2^attempt)),
// so a thousand clients cut off by the same restart do not come back in step.

export const SOCKET_BACKOFF = Object.freeze({ baseMs: 500, capMs: 20_000, stableMs: 10_000 });
export const REQUEST_BACKOFF = Object.freeze({ baseMs: 300, capMs: 10_000 });

export function fullJitter(attempt, { baseMs = 500, capMs = 20_000, random = Math.random } = {}) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
  return Math.floor(random() * ceiling);
}

/** Retry-After (delta-seconds or an HTTP date) in milliseconds, or null if absent or bad. */
export function parseRetryAfter(value, nowMs = Date.now()) {
  if (value == null || value === "") return null;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

/**
 * The wait before retry number `attempt` (0-based), or null when the server asks
 * for a longer wait than `capMs`: then the caller gives up and lets the person
 * decide (a notification with a retry button) instead of hanging silently.
 */
export function retryDelay(attempt, { retryAfterMs = null, ...options } = {}) {
  const capMs = options.capMs ?? REQUEST_BACKOFF.capMs;
  const jitter = fullJitter(attempt, { ...REQUEST_BACKOFF, ...options });
  if (retryAfterMs == null) return jitter;
  if (retryAfterMs > capMs) return null;
  return Math.max(retryAfterMs, jitter);
}

/** A counter of consecutive failures that yields the next delay. */
export class Backoff {
  constructor({ baseMs, capMs, random } = {}) {
    this.options = { baseMs: baseMs ?? SOCKET_BACKOFF.baseMs, capMs: capMs ?? SOCKET_BACKOFF.capMs };
    this.random = random ?? Math.random;
    this.attempt = 0;
  }

  next() {
    const delay = fullJitter(this.attempt, { ...this.options, random: this.random });
    this.attempt += 1;
    return delay;
  }

  reset() {
    this.attempt = 0;
  }
}
