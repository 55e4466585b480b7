// The WebSocket client: a small state machine that is honest about the connection.
//
//   idle -> connecting -> open -> reconnecting -> connecting -> open ...
//                      \-> offline (the browser says so) -> connecting on `online`
//                      \-> closed (stopped, or refused: 1008/4401 without a new token)
//
// - Reconnects with full-jitter backoff (base 0.5 s, cap 20 s); the attempt count
//   resets once a connection has stayed open 10 s. An `advice` frame's
//   retry_after_ms is a floor for the next wait.
// - Retries after 1001, 1006, 1011, 1012, 1013 (and any other unexpected close);
//   never after 1008 or 4401 unless a new token was obtained first.
// - A fresh token before each connect (`getToken` refreshes an old one).
// - Single writer: each connection has a generation number; events from a socket
//   that is no longer the current one are dropped.
// - Application heartbeat: the client pings every `pingMs` and gives up on the
//   connection when the pong is `pongTimeoutMs` late; it answers server pings.
//
// Everything time-based goes through `timers` (the page's Lifetime), so tests drive
// it with a fake clock and teardown leaves nothing running.

import { Backoff, SOCKET_BACKOFF } from "./backoff.js";

export const STATES = Object.freeze(["idle", "connecting", "open", "reconnecting", "offline", "closed"]);
export const RETRY_CODES = new Set([1001, 1006, 1011, 1012, 1013]);
export const AUTH_CODES = new Set([1008, 4401]);
export const CLIENT_HEARTBEAT_CLOSE = 4000; // our own close when a pong is late

export class ChatSocket {
  /**
   * deps: url, WebSocketImpl, getToken({ refresh }) -> Promise<token> (throws
   * AuthRequiredError when the session is over), timers ({setTimeout, clearTimeout,
   * now}), random(), isOnline(), stats (ConnectionStats), onState(state, info),
   * onReady(frame), onFrame(frame), onAuthFailed(reason).
   */
  constructor(deps) {
    this.url = deps.url;
    this.WebSocketImpl = deps.WebSocketImpl;
    this.getToken = deps.getToken;
    this.timers = deps.timers;
    this.isOnline = deps.isOnline ?? (() => true);
    this.stats = deps.stats ?? null;
    this.onStateChange = deps.onState ?? (() => {});
    this.onReady = deps.onReady ?? (() => {});
    this.onFrame = deps.onFrame ?? (() => {});
    this.onAuthFailed = deps.onAuthFailed ?? (() => {});
    this.authFields = deps.authFields ?? (() => ({})); // more for the auth frame (resume points)
    this.backoff = new Backoff({ ...SOCKET_BACKOFF, ...deps.backoff, random: deps.random });
    this.stableMs = deps.backoff?.stableMs ?? SOCKET_BACKOFF.stableMs;
    this.pingMs = deps.pingMs ?? 25_000;
    this.pongTimeoutMs = deps.pongTimeoutMs ?? 10_000;
    this.state = "idle";
    this.gen = 0;
    this.ws = null;
    this.openedAt = null;
    this.nextRetryAt = null;
    this.adviceMs = 0;
    this.needNewToken = false;
    this.authRetried = false;
    this.timer = { retry: null, stable: null, ping: null, pong: null };
  }

  setState(state, info = {}) {
    this.state = state;
    this.onStateChange(state, { nextRetryAt: this.nextRetryAt, ...info });
  }

  start() {
    if (this.state !== "idle" && this.state !== "closed") return;
    if (!this.isOnline()) return this.setState("offline");
    this.connect();
  }

  /** Close for good (log out, page unload). */
  stop(code = 1000, reason = "client closing") {
    this.dropConnection(code, reason);
    this.clearTimer("retry");
    this.nextRetryAt = null;
    this.setState("closed", { reason: "stopped" });
  }

  /** The browser went offline: drop the socket now rather than wait for it to time out. */
  offline() {
    if (this.state === "closed" || this.state === "idle") return;
    this.dropConnection(1000, "offline");
    this.clearTimer("retry");
    this.nextRetryAt = null;
    this.setState("offline");
  }

  /** Back online (or "reconnect now"): connect at once, with a fresh backoff. */
  online() {
    if (this.state === "offline" || this.state === "reconnecting") {
      this.clearTimer("retry");
      this.backoff.reset();
      this.nextRetryAt = null;
      this.connect();
    }
  }

  send(frame) {
    if (this.state !== "open" || !this.ws) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  async connect() {
    const gen = ++this.gen;
    this.nextRetryAt = null;
    this.setState("connecting");
    let token;
    try {
      token = await this.getToken({ refresh: this.needNewToken });
    } catch (error) {
      if (gen !== this.gen) return;
      if (error?.name === "AuthRequiredError") return this.refuse("not_authenticated");
      return this.scheduleReconnect(); // the server is unreachable: same as a failed connect
    }
    if (gen !== this.gen) return;
    this.needNewToken = false;
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch {
      return this.scheduleReconnect();
    }
    this.ws = ws;
    ws.onopen = () => {
      if (gen === this.gen) ws.send(JSON.stringify({ ...this.authFields(), type: "auth", token }));
    };
    ws.onmessage = (message) => {
      if (gen === this.gen) this.receive(message.data);
    };
    ws.onclose = (event) => {
      if (gen === this.gen) this.closed(event.code, event.reason);
    };
    ws.onerror = () => {}; // a close event always follows
  }

  receive(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (!frame || typeof frame.type !== "string") return;
    switch (frame.type) {
      case "ready":
        this.openedAt = this.timers.now();
        this.authRetried = false;
        this.setState("open");
        this.clearTimer("stable");
        this.timer.stable = this.timers.setTimeout(() => this.backoff.reset(), this.stableMs);
        if (frame.heartbeat_seconds) this.pingMs = Math.max(1000, (frame.heartbeat_seconds * 1000) / 2);
        this.schedulePing();
        this.onReady(frame);
        return;
      case "ping":
        this.ws?.send(JSON.stringify({ type: "pong" }));
        return;
      case "pong":
        this.clearTimer("pong");
        return;
      case "advice":
        this.adviceMs = Math.max(0, Number(frame.retry_after_ms) || 0);
        return;
      default:
        this.onFrame(frame);
    }
  }

  schedulePing() {
    this.clearTimer("ping");
    this.timer.ping = this.timers.setTimeout(() => {
      if (!this.send({ type: "ping" })) return;
      this.clearTimer("pong");
      this.timer.pong = this.timers.setTimeout(() => {
        // No pong: the connection is dead even if the browser has not noticed.
        this.dropConnection(CLIENT_HEARTBEAT_CLOSE, "pong timeout");
        this.closed(CLIENT_HEARTBEAT_CLOSE, "pong timeout");
      }, this.pongTimeoutMs);
      this.schedulePing();
    }, this.pingMs);
  }

  /** Forget the current socket (its late events are dropped) and close it. */
  dropConnection(code, reason) {
    const ws = this.ws;
    this.gen += 1;
    this.ws = null;
    this.clearTimer("ping");
    this.clearTimer("pong");
    this.clearTimer("stable");
    if (ws) {
      this.recordClose(code);
      try {
        ws.close(code, reason);
      } catch {
        // already closing
      }
    }
  }

  recordClose(code) {
    if (this.openedAt !== null) this.stats?.connectionEnded(this.timers.now() - this.openedAt);
    this.stats?.closed(code);
    this.openedAt = null;
  }

  closed(code) {
    if (this.ws) {
      this.ws = null;
      this.gen += 1;
      this.clearTimer("ping");
      this.clearTimer("pong");
      this.clearTimer("stable");
      this.recordClose(code);
    }
    if (this.state === "closed" || this.state === "offline") return;
    if (AUTH_CODES.has(code)) {
      if (this.authRetried) return this.refuse(code === 1008 ? "policy" : "not_authenticated");
      this.authRetried = true;
      this.needNewToken = true; // no retry without a new token: connect() gets one first
    }
    this.scheduleReconnect();
  }

  refuse(reason) {
    this.clearTimer("retry");
    this.nextRetryAt = null;
    this.setState("closed", { reason });
    this.onAuthFailed(reason);
  }

  scheduleReconnect() {
    if (!this.isOnline()) {
      this.nextRetryAt = null;
      return this.setState("offline");
    }
    const delay = Math.max(this.backoff.next(), this.adviceMs);
    this.adviceMs = 0;
    this.stats?.reconnectScheduled();
    this.nextRetryAt = this.timers.now() + delay;
    this.clearTimer("retry");
    this.timer.retry = this.timers.setTimeout(() => {
      this.timer.retry = null;
      this.connect();
    }, delay);
    this.setState("reconnecting", { delayMs: delay });
  }

  clearTimer(name) {
    if (this.timer[name] != null) {
      this.timers.clearTimeout(this.timer[name]);
      this.timer[name] = null;
    }
  }
}
