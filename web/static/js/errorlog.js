// The last 50 errors the person met, kept in localStorage for support
// ("what went wrong at 10:42?"). Entries hold the kind, status, code, message
// and request path: never a token, a ticket (query strings are cut) or a body.

export const ERROR_LOG_KEY = "mailchat.errors";
export const ERROR_LOG_LIMIT = 50;

export class ErrorLog {
  constructor({ storage, now = Date.now, limit = ERROR_LOG_LIMIT, key = ERROR_LOG_KEY }) {
    this.storage = storage;
    this.now = now;
    this.limit = limit;
    this.key = key;
  }

  entries() {
    try {
      const entries = JSON.parse(this.storage.getItem(this.key) || "[]");
      return Array.isArray(entries) ? entries : [];
    } catch {
      return [];
    }
  }

  add(error, { path = null, method = null } = {}) {
    const entry = {
      at: new Date(this.now()).toISOString(),
      kind: error?.kind ?? error?.name ?? "error",
      status: error?.status ?? null,
      code: error?.code ?? null,
      message: String(error?.message ?? error).slice(0, 500),
      method,
      path: path ? String(path).split("?")[0] : null,
    };
    const entries = [...this.entries(), entry].slice(-this.limit);
    try {
      this.storage.setItem(this.key, JSON.stringify(entries));
    } catch {
      // storage full or disabled: the log is a convenience, not a duty
    }
    return entry;
  }

  clear() {
    this.storage.removeItem(this.key);
  }
}
