// The outbox: messages typed while the connection is down. They keep the
// client_message_id they were given when typed, so one that did reach the
// server before the cut is recognised there and never answered twice.

export const OUTBOX_LIMIT = 100;

export class Outbox {
  constructor({ limit = OUTBOX_LIMIT, onDrop = () => {} } = {}) {
    this.limit = limit;
    this.onDrop = onDrop;
    this.items = [];
  }

  get size() {
    return this.items.length;
  }

  /** Queue at the back; past the limit the oldest goes (returned, and reported to onDrop). */
  push(item) {
    this.items.push(item);
    if (this.items.length <= this.limit) return null;
    const dropped = this.items.shift();
    this.onDrop(dropped);
    return dropped;
  }

  /** Put a message back at the front (its send failed): it keeps its place in line. */
  unshift(item) {
    this.items.unshift(item);
    if (this.items.length <= this.limit) return null;
    const dropped = this.items.shift(); // still the oldest: the rule is the same both ways
    this.onDrop(dropped);
    return dropped;
  }

  shift() {
    return this.items.shift() ?? null;
  }

  peek() {
    return this.items[0] ?? null;
  }

  has(cmid) {
    return this.items.some((item) => item.cmid === cmid);
  }

  remove(cmid) {
    const before = this.items.length;
    this.items = this.items.filter((item) => item.cmid !== cmid);
    return before !== this.items.length;
  }

  clear() {
    this.items = [];
  }
}
