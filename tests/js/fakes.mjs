// Test doubles for the browser pieces the client modules take as dependencies:
// a manual clock, a WebSocket and an EventSource that the test drives by hand.
// (The modules under test are the real ones; only the browser is stood in for.)

export class FakeClock {
  constructor(start = 1_000_000) {
    this.t = start;
    this.seq = 0;
    this.timers = new Map();
  }

  now() {
    return this.t;
  }

  setTimeout(fn, ms) {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn, every: null });
    return id;
  }

  clearTimeout(id) {
    this.timers.delete(id);
  }

  setInterval(fn, ms) {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn, every: ms });
    return id;
  }

  clearInterval(id) {
    this.timers.delete(id);
  }

  get pending() {
    return this.timers.size;
  }

  /** The delay until the next timer fires (null if none). */
  nextDelay() {
    let next = null;
    for (const timer of this.timers.values()) next = next === null ? timer.at : Math.min(next, timer.at);
    return next === null ? null : next - this.t;
  }

  /** Move time forward, firing due timers in order. */
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let dueId = null;
      let due = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && (due === null || timer.at < due.at)) {
          dueId = id;
          due = timer;
        }
      }
      if (due === null) break;
      this.t = due.at;
      if (due.every) due.at += due.every;
      else this.timers.delete(dueId);
      due.fn();
    }
    this.t = end;
  }
}

export const flush = () => new Promise((resolve) => setImmediate(resolve));

export function fakeWebSocketClass() {
  class FakeWebSocket {
    static instances = [];
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closedWith = null;
      FakeWebSocket.instances.push(this);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close(code, reason) {
      this.closedWith = { code, reason };
    }
    // Test side: what the server does.
    serverOpen() {
      this.onopen?.();
    }
    serverSend(frame) {
      this.onmessage?.({ data: JSON.stringify(frame) });
    }
    serverClose(code, reason = "") {
      this.onclose?.({ code, reason });
    }
    static get last() {
      return FakeWebSocket.instances.at(-1);
    }
  }
  return FakeWebSocket;
}

export function fakeEventSourceClass() {
  class FakeEventSource {
    static instances = [];
    constructor(url) {
      this.url = url;
      this.listeners = new Map();
      this.closed = false;
      FakeEventSource.instances.push(this);
    }
    addEventListener(type, fn) {
      if (!this.listeners.has(type)) this.listeners.set(type, []);
      this.listeners.get(type).push(fn);
    }
    close() {
      this.closed = true;
    }
    emit(type, data) {
      const message = data === undefined ? { type } : { type, data: JSON.stringify(data) };
      for (const fn of this.listeners.get(type) ?? []) fn(message);
    }
    static get open() {
      return FakeEventSource.instances.filter((es) => !es.closed);
    }
    static get last() {
      return FakeEventSource.instances.at(-1);
    }
  }
  return FakeEventSource;
}

export class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  getItem(key) {
    return this.map.has(key) ? this.map.get(key) : null;
  }
  setItem(key, value) {
    this.map.set(key, String(value));
  }
  removeItem(key) {
    this.map.delete(key);
  }
}

/** An answer's events, as the worker writes them. */
export function answerEvents(conversationId, cmid, { startMs = 1000, q = "interviews", windowDays = 30, text = "Found it [1]", cancelled = false } = {}) {
  let seq = 0;
  const event = (type, data) => ({ id: `${startMs}-${seq++}`, type, conversation_id: conversationId, data: { client_message_id: cmid, ...data } });
  const search = { query: q, window_days: windowDays, total_hits: 1, filters: {} };
  const citations = [{ id: "u_1:abc", subject: "Interview", from: "HR <hr@example.com>", received_at: "2024-01-01T00:00:00+00:00", snippet: "" }];
  if (cancelled) {
    return [event("question", { q, window_days: windowDays }), event("done", { cancelled: true, answer: "", citations: [], search: {} })];
  }
  const pieces = text.match(/.{1,4}/g);
  return [
    event("question", { q, window_days: windowDays }),
    event("search", { search }),
    event("hits", { citations }),
    ...pieces.map((piece, index) => event("delta", { text: piece, index })),
    event("done", { cancelled: false, answer: text, citations, search }),
  ];
}
