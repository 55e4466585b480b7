// The page: builds every piece, wires them to the DOM, and tears them all down.
//
// Two lifetimes: the page's (its own listeners: unload, global error handlers)
// and the chat session's (socket, stream, telemetry, countdowns, UI handlers),
// which ends on log out or when the session expires. Page unload ends both, so
// no timer, listener, EventSource or WebSocket survives.

import { Api } from "./api.js";
import { TokenStore } from "./auth.js";
import { ChatController } from "./chat.js";
import { debugHandle } from "./debug.js";
import { signUp } from "./signup.js";
import { ErrorLog } from "./errorlog.js";
import { Lifetime } from "./lifetime.js";
import { ChatSocket } from "./socket.js";
import { StreamManager } from "./stream.js";
import { ConnectionStats, UxTelemetry } from "./telemetry.js";
import { renderConversationList } from "./ui/conversations.js";
import { EmailView } from "./ui/email.js";
import { MailboxView } from "./ui/mailbox.js";
import { MessageList } from "./ui/messages.js";
import { Notifier } from "./ui/notify.js";
import { StatusView } from "./ui/status.js";

function hostOf(win) {
  return {
    setTimeout: win.setTimeout.bind(win),
    clearTimeout: win.clearTimeout.bind(win),
    setInterval: win.setInterval.bind(win),
    clearInterval: win.clearInterval.bind(win),
    now: () => Date.now(),
  };
}

export class App {
  constructor(win) {
    this.win = win;
    this.doc = win.document;
    this.$ = (selector) => this.doc.querySelector(selector);
    this.page = new Lifetime(hostOf(win));
    this.errorLog = new ErrorLog({ storage: win.localStorage });
    this.notifier = new Notifier(this.$("#toasts"), this.page);
    const fetch = win.fetch.bind(win);
    this.tokens = new TokenStore({ storage: win.sessionStorage, fetch, onLogout: (reason) => this.sessionEnded(reason) });
    this.api = new Api({
      fetch,
      tokens: this.tokens,
      isOnline: () => win.navigator.onLine,
      sleep: (ms, signal) => this.page.sleep(ms, signal),
      timers: this.page,
      signal: this.page.signal,
      onError: (error, info) => this.errorLog.add(error, info),
    });
    this.session = null;
    this.config = null;
  }

  async start() {
    const { page, win } = this;
    page.listen(win, "pagehide", () => this.teardown());
    page.listen(win, "pageshow", (event) => event.persisted && win.location.reload());
    page.listen(win, "unhandledrejection", (event) => {
      event.preventDefault();
      this.unexpected(event.reason);
    });
    page.listen(win, "error", (event) => this.unexpected(event.error ?? event.message));
    page.listen(this.$("#login-form"), "submit", (event) => this.login(event));
    page.listen(this.$("#signup-form"), "submit", (event) => this.signup(event));
    page.listen(this.$("#show-signup"), "click", () => this.showSignup());
    page.listen(this.$("#show-login"), "click", () => this.showLogin());
    await this.boot();
  }

  async boot() {
    this.config = await this.loadConfig();
    if (!this.config) return;
    if (this.tokens.token() && this.tokens.renewable()) this.openChat();
    else this.showLogin();
  }

  async loadConfig() {
    try {
      return await this.api.get("/client/config", { auth: false, retries: 3 });
    } catch (error) {
      if (error?.name === "AbortError") return null;
      this.showLogin("The server cannot be reached right now.");
      this.notify({ level: "error", message: `Could not load the page's settings: ${error.message}`, retry: () => this.boot() });
      return null;
    }
  }

  notify(note) {
    if (note.level === "error") this.errorLog.add(Object.assign(new Error(note.message), { kind: "notice" }));
    return this.notifier.show(note);
  }

  unexpected(reason) {
    if (reason?.name === "AbortError") return;
    this.errorLog.add(reason instanceof Error ? reason : new Error(String(reason)));
    this.notifier.show({ level: "error", message: `Something went wrong: ${reason?.message ?? reason}` });
  }

  // --- login ---------------------------------------------------------------------

  showLogin(message = "") {
    this.$("#chat-view").hidden = true;
    this.$("#login-view").hidden = false;
    this.$("#signup-form").hidden = true;
    this.$("#login-form").hidden = false;
    this.$("#signup-offer").hidden = this.config ? this.config.registration_enabled === false : false;
    const error = this.$("#login-error");
    error.textContent = message;
    error.hidden = !message;
    this.$("#login-email").focus();
  }

  async login(event) {
    event.preventDefault();
    const button = this.$("#login-submit");
    const error = this.$("#login-error");
    button.disabled = true;
    error.hidden = true;
    try {
      await this.tokens.login(this.$("#login-email").value.trim(), this.$("#login-password").value);
      this.$("#login-password").value = "";
      if (!this.config) this.config = await this.loadConfig();
      if (this.config) this.openChat();
    } catch (caught) {
      error.textContent = caught.status === 401 ? "Email or password is wrong." : caught.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  showSignup() {
    this.$("#login-form").hidden = true;
    this.$("#signup-form").hidden = false;
    this.$("#signup-error").hidden = true;
    this.$("#signup-email").focus();
  }

  /** POST /api/auth/register, then log in with the same email and password. */
  async signup(event) {
    event.preventDefault();
    await signUp({
      $: this.$,
      api: this.api,
      tokens: this.tokens,
      done: async () => {
        if (!this.config) this.config = await this.loadConfig();
        if (!this.config) return;
        this.openChat();
        this.showMailbox(true); // a new person has no mail yet: start where it is added
      },
    });
  }

  /** Google sends the browser back to /?gmail=connected (or ?gmail=error&reason=...). */
  afterGmailConsent() {
    const params = new URLSearchParams(this.win.location.search);
    const outcome = params.get("gmail");
    if (!outcome) return;
    this.win.history.replaceState(null, "", this.win.location.pathname);
    const failed = outcome !== "connected";
    const reason = (params.get("reason") ?? "").slice(0, 200);
    this.notify({ level: failed ? "error" : "info", message: failed ? `Gmail was not connected: ${reason}` : "Gmail connected: its mail is syncing now." });
    this.showMailbox(true);
  }

  showMailbox(show) {
    this.$("#chat-view").classList.toggle("show-mailbox", show);
    this.$("#mailbox-view").hidden = !show;
    this.$("#open-mailbox").setAttribute("aria-expanded", String(show));
    if (show) this.session?.mailbox.reload();
    else this.$("#composer-input").focus();
  }

  sessionEnded(reason) {
    this.closeChat();
    this.showLogin(reason);
  }

  logout() {
    this.closeChat();
    this.tokens.logout(); // ends the session on the server too (best effort)
    this.showLogin("You are logged out.");
  }

  // --- the chat session ----------------------------------------------------------

  openChat() {
    if (this.session) return;
    const { win, doc, api, tokens, config } = this;
    const life = new Lifetime(hostOf(win));
    const stats = new ConnectionStats();
    const isOnline = () => win.navigator.onLine;
    const controller = new ChatController({
      api,
      config,
      isOnline,
      notify: (note) => this.notify(note),
      onChange: () => this.render(),
      logError: (error, info) => this.errorLog.add(error, info),
    });
    const stream = new StreamManager({
      EventSourceImpl: win.EventSource,
      getTicket: async () => (await api.post("/api/chat/ticket", undefined, { idempotent: true, retries: 2 })).ticket,
      probe: () => this.probeStreaming(),
      onReady: (ready) => controller.streamReady(ready),
      onEvent: (event) => controller.receive(event),
    });
    const status = new StatusView({
      indicator: this.$("#status"),
      banner: this.$("#banner"),
      timers: life,
      stats,
      onReconnectNow: () => socket.online(),
    });
    const socket = new ChatSocket({
      url: `${win.location.protocol === "https:" ? "wss" : "ws"}://${win.location.host}/ws`,
      WebSocketImpl: win.WebSocket,
      getToken: ({ refresh }) => (refresh ? tokens.refresh() : tokens.freshToken()),
      timers: life,
      isOnline,
      stats,
      onState: (state, info) => {
        controller.socketStateChanged(state);
        status.update(state, info);
      },
      onReady: (frame) => controller.socketReady(frame),
      authFields: () => controller.socketAuthFields(),
      onFrame: (frame) => {
        if (mailbox.receive(frame)) return;
        controller.socketFrame(frame);
      },
      onAuthFailed: (reason) => {
        if (reason === "not_authenticated") tokens.requireLogin("Your session has ended; log in again.");
      },
    });
    controller.attach({ stream, socket });
    const telemetry = new UxTelemetry({
      post: (path) => (isOnline() ? api.post(path, undefined, { retries: 0, quiet: true }) : null),
      timers: life,
      doc,
      intervalMs: (config.heartbeat_seconds ?? 30) * 1000,
      // Best effort, never shown; a dead network is the banner's news, not a support case.
      onError: (error) => {
        if (!["offline", "network", "timeout"].includes(error?.kind)) this.errorLog.add(error, { method: "POST", path: "/api/ux" });
      },
    });
    const emailView = new EmailView(this.$("#email-dialog"), life);
    const mailbox = new MailboxView({
      doc,
      api,
      config,
      life,
      notify: (note) => this.notify(note),
      confirm: (text) => win.confirm(text),
      go: (url) => win.location.assign(url),
    });
    const messages = new MessageList(this.$("#messages"), this.$("#thread"), (id) => this.openEmail(id));
    this.session = { life, stats, controller, stream, socket, status, telemetry, emailView, messages, mailbox, listSignature: "" };
    this.afterGmailConsent();

    life.listen(win, "online", () => socket.online());
    life.listen(win, "offline", () => socket.offline());
    life.listen(doc, "visibilitychange", () => telemetry.visibilityChanged());
    this.wireComposer(life, controller);
    life.listen(this.$("#new-chat"), "click", () => {
      controller.newChat();
      this.$("#composer-input").focus();
    });
    life.listen(this.$("#logout"), "click", () => this.logout());
    life.listen(this.$("#open-mailbox"), "click", () => this.showMailbox(this.$("#mailbox-view").hidden));
    life.listen(this.$("#close-mailbox"), "click", () => this.showMailbox(false));
    for (const radio of doc.querySelectorAll("input[name=window]")) {
      life.listen(radio, "change", () => radio.checked && controller.setWindow(Number(radio.value)));
    }
    life.listen(this.$("#conversation-list"), "click", (event) => {
      const item = event.target.closest("[data-conversation-id]");
      if (item) controller.open(item.dataset.conversationId);
    });

    this.$("#login-view").hidden = true;
    this.$("#chat-view").hidden = false;
    this.$("#user-email").textContent = tokens.user?.email ?? "";
    this.$("#composer-input").focus();
    status.update("idle");
    this.keepTokenFresh(life);
    socket.start();
    telemetry.start();
    mailbox.start();
    controller.refreshList();
    this.render();
  }

  /**
   * Access tokens live 15 minutes, so while the chat is open the token is
   * refreshed two minutes before it expires (a 401 on the way still gets its
   * one refresh in the Api).
   */
  keepTokenFresh(life) {
    const schedule = (ms) =>
      life.setTimeout(async () => {
        try {
          await this.tokens.refresh();
          schedule(this.tokens.msUntilRefresh());
        } catch (error) {
          if (error?.name === "AuthRequiredError") this.tokens.requireLogin("Your session has ended; log in again.");
          else schedule(30_000); // unreachable for now: try again soon
        }
      }, Math.max(0, ms));
    schedule(this.tokens.msUntilRefresh());
  }

  wireComposer(life, controller) {
    const form = this.$("#composer");
    const input = this.$("#composer-input");
    const counter = this.$("#composer-count");
    const error = this.$("#composer-error");
    const limit = this.config.max_question_chars;
    const update = () => {
      const length = input.value.trim().length;
      counter.textContent = `${length.toLocaleString("en")} / ${limit.toLocaleString("en")}`;
      counter.classList.toggle("over", length > limit);
      if (length <= limit) error.hidden = true;
    };
    life.listen(input, "input", update);
    life.listen(input, "keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    life.listen(form, "submit", (event) => {
      event.preventDefault();
      const result = controller.send(input.value);
      if (result.ok) {
        input.value = "";
        update();
      } else if (result.reason === "too_long") {
        error.textContent = result.message;
        error.hidden = false;
      }
    });
    update();
  }

  async probeStreaming() {
    // Without `q` the stream endpoint answers 400 when streaming is on and asks
    // nothing; when it is off it answers 503 with X-Chat-Streaming-Disabled.
    try {
      await this.api.get("/api/chat/stream", { retries: 0, quiet: true });
      return { state: "enabled" };
    } catch (error) {
      if (error.streamingDisabled) return { state: "disabled", retryAfterMs: error.retryAfterMs ?? 60_000 };
      return { state: error.kind === "validation" ? "enabled" : "unreachable" };
    }
  }

  async openEmail(id) {
    const { emailView, controller } = this.session;
    emailView.loading();
    try {
      emailView.show(await controller.openEmail(id));
    } catch (error) {
      emailView.close();
      if (error?.name === "AbortError") return;
      this.notify({ level: "error", message: `Could not open the email: ${error.message}`, retry: () => this.openEmail(id) });
    }
  }

  render() {
    const session = this.session;
    if (!session) return;
    const { controller } = session;
    const current = controller.current;
    session.messages.render(controller.currentId, current ? current.view() : []);
    this.$("#empty-state").hidden = Boolean(current && current.turns.length);
    for (const radio of this.doc.querySelectorAll("input[name=window]")) radio.checked = Number(radio.value) === controller.windowDays;
    this.renderList(session, controller);
  }

  renderList(session, controller) {
    renderConversationList(this.$("#conversation-list"), session, controller);
  }

  closeChat() {
    const session = this.session;
    if (!session) return;
    this.session = null;
    session.controller.teardown();
    session.socket.stop(1000, "closing");
    session.telemetry.stop();
    session.status.stop();
    session.emailView.close();
    session.life.dispose();
    this.$("#messages").replaceChildren();
    this.$("#conversation-list").replaceChildren();
    this.$("#banner").hidden = true;
    this.$("#account-list").replaceChildren();
    this.showMailbox(false);
  }

  /** Page unload: end everything. */
  teardown() {
    this.closeChat();
    this.notifier.clear();
    this.page.dispose();
  }

  /** What the end-to-end tests read (no secrets: no token). */
  debugHandle() {
    return debugHandle(this);
  }
}
