// The session: an access token and a rotating refresh token, kept in
// sessionStorage (this tab only, gone when it closes). Access tokens live 15
// minutes; POST /api/auth/refresh trades the refresh token for a new pair
// (the old refresh token is then spent: presenting it again revokes the whole
// session, so concurrent callers share one refresh). The page refreshes before
// a socket connects and whenever a request meets a 401; a refused refresh (the
// session was logged out, revoked or is past its absolute lifetime) asks the
// person to log in again.

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
      return session && typeof session.token === "string" && typeof session.refreshToken === "string" ? session : null;
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

  /** Whether a refresh can still work: the session has not reached its absolute end. */
  renewable() {
    return this.session !== null && this.now() < this.session.sessionEndsAt;
  }

  set({ access_token, expires_in, refresh_token, refresh_expires_in, user }) {
    const issuedAt = this.now();
    this.session = {
      token: access_token,
      refreshToken: refresh_token,
      issuedAt,
      expiresAt: issuedAt + expires_in * 1000,
      sessionEndsAt: issuedAt + refresh_expires_in * 1000,
      user,
    };
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

  /** Log this session out on the server (best effort), then forget it here. */
  async logout() {
    const token = this.token();
    this.clear();
    if (!token) return;
    try {
      await this.fetch("/api/auth/logout", {
        method: "POST",
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      });
    } catch {
      // Unreachable: the session still ends here, and on the server at its expiry.
    }
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

  /** Trade the refresh token for a fresh pair; concurrent callers share one call (a refresh
   *  token works once). */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  async doRefresh() {
    if (!this.renewable()) throw new AuthRequiredError();
    let response;
    try {
      response = await this.fetch("/api/auth/refresh", {
        method: "POST",
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ refresh_token: this.session.refreshToken }),
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
    if (!this.token() || !this.renewable()) throw new AuthRequiredError();
    if (this.expired() || this.age() > maxAgeMs) await this.refresh();
    return this.token();
  }
}
