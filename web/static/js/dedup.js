// Event ids are Redis Stream entry ids, "<milliseconds>-<sequence>". They are
// compared as numbers (BigInt: the server's "position before" can carry a
// sequence of 2^64-1), never as text ("9-0" < "10-0").

function parts(id) {
  const [ms, seq = "0"] = String(id ?? "0").split("-");
  return [BigInt(ms || "0"), BigInt(seq || "0")];
}

export function compareIds(a, b) {
  const [am, as] = parts(a);
  const [bm, bs] = parts(b);
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return 0;
}

export function isEventId(value) {
  return typeof value === "string" && /^\d+(-\d+)?$/.test(value);
}

/**
 * One stream's read position. Every transport delivers a stream's events in
 * order and without gaps from where it started, so "newer than the last one
 * applied" is exactly "not seen yet": an SSE stream and the WebSocket can
 * both deliver the same answer and each event is still applied once.
 */
export class StreamCursor {
  constructor(lastId = "0") {
    this.lastId = lastId;
    this.duplicates = 0;
  }

  accept(id) {
    if (!isEventId(id)) return false;
    if (compareIds(id, this.lastId) <= 0) {
      this.duplicates += 1;
      return false;
    }
    this.lastId = id;
    return true;
  }

  reset(lastId = "0") {
    this.lastId = lastId;
  }
}

/** Remembers the last `limit` ids seen (for streams read out of order, e.g. notifications). */
export class SeenIds {
  constructor(limit = 1000) {
    this.limit = limit;
    this.ids = new Set();
    this.duplicates = 0;
  }

  accept(id) {
    if (this.ids.has(id)) {
      this.duplicates += 1;
      return false;
    }
    this.ids.add(id);
    if (this.ids.size > this.limit) this.ids.delete(this.ids.values().next().value);
    return true;
  }
}

export function newId(prefix, bytes = 8) {
  const buffer = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(buffer);
  return prefix + Array.from(buffer, (b) => b.toString(16).padStart(2, "0")).join("");
}
