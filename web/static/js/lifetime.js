// Every timer and listener the page starts goes through one Lifetime, so
// teardown (page unload, log out) can end all of them at once and prove it:
// `activeTimers` is 0 afterwards and every listener is removed through one
// AbortSignal. Tests pass a fake host (setTimeout/clearTimeout/now).

export class Lifetime {
  constructor(host = globalThis) {
    this.host = host;
    this.timers = new Map(); // id -> "timeout" | "interval"
    this.controller = new AbortController();
    this.disposed = false;
  }

  get signal() {
    return this.controller.signal;
  }

  get activeTimers() {
    return this.timers.size;
  }

  now() {
    return this.host.now ? this.host.now() : Date.now();
  }

  setTimeout(fn, ms) {
    if (this.disposed) return null;
    const id = this.host.setTimeout(() => {
      this.timers.delete(id);
      fn();
    }, Math.max(0, ms));
    this.timers.set(id, "timeout");
    return id;
  }

  clearTimeout(id) {
    if (id == null) return;
    this.host.clearTimeout(id);
    this.timers.delete(id);
  }

  setInterval(fn, ms) {
    if (this.disposed) return null;
    const id = this.host.setInterval(fn, ms);
    this.timers.set(id, "interval");
    return id;
  }

  clearInterval(id) {
    if (id == null) return;
    this.host.clearInterval(id);
    this.timers.delete(id);
  }

  /** A promise resolved after `ms`, rejected with AbortError if `signal` aborts or on dispose. */
  sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      const abort = () => {
        this.clearTimeout(id);
        reject(new DOMException("aborted", "AbortError"));
      };
      if (this.disposed || signal?.aborted) return abort();
      const id = this.setTimeout(() => {
        signal?.removeEventListener("abort", abort);
        this.signal.removeEventListener("abort", abort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", abort, { once: true });
      this.signal.addEventListener("abort", abort, { once: true });
    });
  }

  /** addEventListener tied to this lifetime: dispose() removes it. */
  listen(target, type, handler, options = {}) {
    if (this.disposed) return;
    target.addEventListener(type, handler, { ...options, signal: this.signal });
  }

  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    for (const [id, kind] of this.timers) {
      if (kind === "interval") this.host.clearInterval(id);
      else this.host.clearTimeout(id);
    }
    this.timers.clear();
    this.controller.abort();
  }
}
