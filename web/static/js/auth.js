// The access token: kept in sessionStorage (this tab only, gone when it
// closes), refreshed through POST /api/auth/refresh while it is still valid.
// Tokens live 15 minutes and an expired one cannot be refreshed, so the page
// refreshes before a socket connects and whenever a request meets a 401; if
// that fails the person is asked to log in again.

const KEY = "mailchat.session";
const REQUEST_TIMEOUT_MS = 10_000;

export class AuthRequiredError extends Error {
  constructor(message = "Log in to continue.") {
    super(message);
    this.name = "AuthRequiredError";
  }
}

export class TokenStore {
  /** deps: storage (sessionStorage-like), fetch, now(), onLogout(reason). */
  constructor({ storage, fetch, now = Date.now, onLogout = () => {} }) {
    this.storage = storage;
    this.fetch = fetch;
    this.now = now;
    this.onLogout = onLogout;
    this.session = this.load();
    this.refreshing = null;
  }

  load() {
    try {
      const session = JSON.parse(this.storage.getItem(KEY) || "null");
      return session && typeof session.token === "string" ? session : null;
    } catch {
      return null;
    }
  }

  token() {
    return this.session?.token ?? null;
  }

  get user() {
    return this.session?.user ?? null;
  }

  /** Milliseconds since the current token was issued (Infinity without one). */
  age() {
    return this.session ? this.now() - this.session.issuedAt : Infinity;
  }

  expired() {
    return !this.session || this.now() >= this.session.expiresAt;
  }

  set({ access_token, expires_in, user }) {
    const issuedAt = this.now();
    this.session = { token: access_token, issuedAt, expiresAt: issuedAt + expires_in * 1000, user };
    this.storage.setItem(KEY, JSON.stringify(this.session));
  }

  clear() {
    this.session = null;
    this.storage.removeItem(KEY);
  }

  /** The session is over: forget the token and show the login form (once). */
  requireLogin(reason = "Your session has ended; log in again.") {
    const hadSession = this.session !== null;
    this.clear();
    if (hadSession) this.onLogout(reason);
  }

  async login(email, password) {
    let response;
    try {
      response = await this.fetch("/api/auth/login", {
        method: "POST",
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ email, password }),
      });
    } catch (cause) {
      throw new Error("The server cannot be reached; try again in a moment.", { cause });
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const error = new Error(body?.error?.message || `Login failed (${response.status}).`);
      error.status = response.status;
      throw error;
    }
    this.set(body);
    return body.user;
  }

  /** Trade the current (still valid) token for a fresh one; concurrent callers share one call. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  async doRefresh() {
    const token = this.token();
    if (!token || this.expired()) throw new AuthRequiredError();
    let response;
    try {
      response = await this.fetch("/api/auth/refresh", {
        method: "POST",
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      });
    } catch (cause) {
      const error = new Error("The server cannot be reached.", { cause });
      error.kind = "network";
      throw error;
    }
    if (response.status === 401) throw new AuthRequiredError();
    if (!response.ok) {
      const error = new Error(`Token refresh failed (${response.status}).`);
      error.kind = response.status >= 500 ? "server" : "request";
      throw error;
    }
    this.set(await response.json());
    return this.token();
  }

  /** Milliseconds until the token should be refreshed (`marginMs` before it expires). */
  msUntilRefresh(marginMs = 120_000) {
    return this.session ? this.session.expiresAt - marginMs - this.now() : null;
  }

  /** A token issued less than `maxAgeMs` ago, refreshing if needed (before each socket connect). */
  async freshToken({ maxAgeMs = 60_000 } = {}) {
    if (!this.token() || this.expired()) throw new AuthRequiredError();
    if (this.age() > maxAgeMs) await this.refresh();
    return this.token();
  }
}
