// What the page reports and counts about itself.
//
// UxTelemetry: POST /api/ux/chat/opened once when the chat opens, and
// POST /api/ux/heartbeat every 30 s while the page is visible (a hidden tab
// stops; becoming visible starts the 30 s clock again). Both are body-less and
// best effort: a failure is logged for support, never shown to the person.
//
// ConnectionStats: close codes, reconnect attempts and connection durations of
// the WebSocket, kept in the page (shown in the status indicator's details).

export class UxTelemetry {
  /** deps: post(path) -> Promise, timers (Lifetime), doc ({visibilityState}), intervalMs, onError. */
  constructor({ post, timers, doc, intervalMs = 30_000, onError = () => {} }) {
    this.post = post;
    this.timers = timers;
    this.doc = doc;
    this.intervalMs = intervalMs;
    this.onError = onError;
    this.interval = null;
    this.started = false;
    this.sent = { opened: 0, heartbeats: 0 };
  }

  start() {
    if (this.started) return;
    this.started = true;
    this.send("/api/ux/chat/opened", "opened");
    this.visibilityChanged();
  }

  /** Call on `visibilitychange`. */
  visibilityChanged() {
    if (!this.started) return;
    if (this.doc.visibilityState === "visible") {
      if (this.interval == null) {
        this.interval = this.timers.setInterval(() => this.send("/api/ux/heartbeat", "heartbeats"), this.intervalMs);
      }
    } else {
      this.stopHeartbeat();
    }
  }

  stopHeartbeat() {
    if (this.interval != null) {
      this.timers.clearInterval(this.interval);
      this.interval = null;
    }
  }

  stop() {
    this.started = false;
    this.stopHeartbeat();
  }

  send(path, counter) {
    this.sent[counter] += 1;
    Promise.resolve()
      .then(() => this.post(path))
      .catch((error) => this.onError(error));
  }
}

export class ConnectionStats {
  constructor({ keep = 50 } = {}) {
    this.keep = keep;
    this.closeCodes = {};
    this.reconnectAttempts = 0;
    this.durationsMs = [];
    this.connections = 0;
  }

  closed(code) {
    const key = String(code ?? "none");
    this.closeCodes[key] = (this.closeCodes[key] ?? 0) + 1;
  }

  reconnectScheduled() {
    this.reconnectAttempts += 1;
  }

  connectionEnded(durationMs) {
    this.connections += 1;
    this.durationsMs.push(Math.max(0, Math.round(durationMs)));
    if (this.durationsMs.length > this.keep) this.durationsMs.shift();
  }

  snapshot() {
    const total = this.durationsMs.reduce((a, b) => a + b, 0);
    return {
      closeCodes: { ...this.closeCodes },
      reconnectAttempts: this.reconnectAttempts,
      connections: this.connections,
      meanConnectionMs: this.durationsMs.length ? Math.round(total / this.durationsMs.length) : null,
      recentDurationsMs: [...this.durationsMs],
    };
  }
}
