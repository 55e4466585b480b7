// The chat controller: what happens when the person sends, switches the
// window, opens a conversation, or the connection comes and goes. No DOM here:
// the UI reads the state and calls these methods; `onChange` asks it to redraw.
//
// Paths, one at a time:
// - asking: the SSE stream (StreamManager), one EventSource per chat; a stream
//   that cannot start (streaming switched off, or a question too long for a
//   URL) asks the same question, same client_message_id, over POST /api/chat;
// - following: the WebSocket resumes the open conversation at (epoch, last id)
//   after every (re)connect and whenever the answer stream drops; `reset`
//   refetches the conversation over JSON;
// - the outbox: messages typed while offline or reconnecting wait, and go out one
//   at a time (each waits for its answer: a newer question would cancel it) once
//   the socket is back.

import { Conversation } from "./conversation.js";
import { compareIds, newId, SeenIds } from "./dedup.js";
import { Outbox } from "./queue.js";
import { StreamFailedError, StreamingDisabledError } from "./stream.js";

const DISCONNECTED = new Set(["offline", "reconnecting"]);

export class ChatController {
  /**
   * deps: api (Api), notify({level, message, retry}), config ({max_question_chars,
   * default_window_days}), isOnline(), onChange(), logError(error, info).
   */
  constructor({ api, notify, config, isOnline = () => true, onChange = () => {}, logError = () => {} }) {
    this.api = api;
    this.notify = notify;
    this.config = config;
    this.isOnline = isOnline;
    this.onChange = onChange;
    this.logError = logError;
    this.conversations = new Map();
    this.list = [];
    this.currentId = null;
    this.windowDays = config.default_window_days ?? 30;
    this.active = null; // {cmid, conversationId}: the question being answered
    this.outbox = new Outbox({ onDrop: (item) => this.dropped(item) });
    this.notifications = new SeenIds(500);
    // Where the socket's notifications stand ({after, epoch}, from `ready`, then each one
    // received): the next socket's auth frame asks for what came after it.
    this.notificationsAt = null;
    this.socketState = "idle";
    this.stream = null;
    this.socket = null;
    this.closedForGood = false;
    this.queuedNotice = null; // dismisses the "will be sent" notice
  }

  attach({ stream, socket }) {
    this.stream = stream;
    this.socket = socket;
  }

  get current() {
    return this.currentId ? this.conversation(this.currentId) : null;
  }

  conversation(id) {
    let conversation = this.conversations.get(id);
    if (!conversation) {
      conversation = new Conversation(id);
      this.conversations.set(id, conversation);
    }
    return conversation;
  }

  changed() {
    if (!this.closedForGood) this.onChange();
  }

  // --- sending -------------------------------------------------------------------

  /** Check and send (or queue) a message. Returns {ok} or {ok: false, reason}. */
  send(text) {
    const q = String(text ?? "").trim();
    if (!q) return { ok: false, reason: "empty" };
    const limit = this.config.max_question_chars;
    if (q.length > limit) {
      const message = `Your message is ${q.length.toLocaleString("en")} characters; the limit is ${limit.toLocaleString("en")}.`;
      this.notify({ level: "error", message });
      return { ok: false, reason: "too_long", message };
    }
    if (!this.currentId) this.currentId = newId("c_");
    const item = { cmid: newId("m_"), q, windowDays: this.windowDays, conversationId: this.currentId };
    if (this.mustQueue()) this.queue(item);
    else this.ask(item);
    return { ok: true, cmid: item.cmid };
  }

  mustQueue() {
    return !this.isOnline() || DISCONNECTED.has(this.socketState) || this.outbox.size > 0;
  }

  queue(item, { front = false } = {}) {
    this.conversation(item.conversationId).addLocal({ ...item, status: "queued" });
    if (front) this.outbox.unshift(item);
    else this.outbox.push(item);
    if (this.outbox.size === 1 && !this.queuedNotice) {
      const dismiss = this.notify({ level: "info", message: "Not connected: your message will be sent when the connection is back.", dismissMs: 60_000 });
      this.queuedNotice = typeof dismiss === "function" ? dismiss : () => {};
    }
    this.changed();
  }

  dropped(item) {
    this.conversations.get(item.conversationId)?.removeLocal(item.cmid);
    this.notify({
      level: "warning",
      message: `The outbox holds ${this.outbox.limit} messages at most; the oldest was dropped: “${item.q.slice(0, 60)}”.`,
    });
  }

  /** Ask now: the newer question supersedes whatever this chat was answering. */
  async ask(item) {
    const conversation = this.conversation(item.conversationId);
    conversation.supersedeRunning(item.cmid);
    conversation.addLocal({ ...item, status: "sending" });
    this.active = { cmid: item.cmid, conversationId: item.conversationId };
    this.changed();
    let result;
    try {
      result = await this.stream.ask({
        q: item.q,
        windowDays: item.windowDays,
        conversationId: item.conversationId,
        cmid: item.cmid,
      });
    } catch (error) {
      if (error instanceof StreamingDisabledError || error instanceof StreamFailedError) {
        return this.askJson(item);
      }
      return this.sendFailed(item, error);
    }
    if (result.outcome === "dropped") {
      // Cut mid-answer (server restart, network): the socket resumes the rest.
      this.follow(conversation);
      this.changed();
    }
  }

  /** The same question over POST /api/chat (streaming off): rendered exactly as a stream. */
  async askJson(item) {
    const conversation = this.conversation(item.conversationId);
    let body;
    try {
      body = await this.api.post(
        "/api/chat",
        {
          q: item.q,
          window_days: item.windowDays,
          conversation_id: item.conversationId,
          client_message_id: item.cmid,
        },
        { idempotent: true, retries: 1, timeoutMs: 45_000 },
      );
    } catch (error) {
      return this.sendFailed(item, error);
    }
    conversation.applyAnswer(item.cmid, body);
    this.changed();
    // The log's own events bring the position (epoch, last id) the socket resumes from.
    await this.sync(conversation);
    this.follow(conversation);
    const turn = conversation.turn(item.cmid);
    if (turn && ["done", "error", "superseded"].includes(turn.answer.status)) this.answered(item.cmid);
  }

  sendFailed(item, error) {
    if (error?.name === "AbortError") return;
    const conversation = this.conversation(item.conversationId);
    if (this.active?.cmid === item.cmid) this.active = null;
    if (error?.kind === "unauthorized") {
      conversation.setLocal(item.cmid, "failed");
      return this.changed();
    }
    const unreachable = ["offline", "network", "timeout"].includes(error?.kind);
    if (unreachable && (!this.isOnline() || this.socketState !== "open")) {
      // The socket's return drains the outbox: nothing is lost, nothing sent twice.
      this.queue(item, { front: true });
      return;
    }
    conversation.setLocal(item.cmid, "failed");
    this.changed();
    this.notify({
      level: "error",
      message: `Your message was not sent: ${error?.message ?? error}`,
      retry: () => this.retry(item),
    });
    this.drain();
  }

  /** Send a failed message again, with its original client_message_id. */
  retry(item) {
    if (this.mustQueue()) this.queue(item);
    else this.ask(item);
  }

  /** An answer ended (done, error or superseded). */
  answered(cmid) {
    if (this.active?.cmid === cmid) {
      this.active = null;
      this.refreshList();
      this.drain();
    }
  }

  /** Send the next queued message if the connection is up and nothing is being answered. */
  drain() {
    if (this.closedForGood || this.active || this.outbox.size === 0) return;
    if (!this.isOnline() || DISCONNECTED.has(this.socketState)) return;
    this.queuedNotice?.(); // the connection is back: the notice has done its job
    this.queuedNotice = null;
    this.ask(this.outbox.shift());
  }

  // --- the window ----------------------------------------------------------------

  /** A new window re-asks the last question for it (superseding a running answer). */
  setWindow(days) {
    if (days === this.windowDays) return;
    this.windowDays = days;
    const last = this.current?.lastTurn();
    if (last && last.q && last.windowDays !== days && !this.outbox.has(last.cmid)) this.send(last.q);
    else this.changed();
  }

  // --- receiving -----------------------------------------------------------------

  /** A log event from any transport. */
  receive(event) {
    if (!event?.conversation_id) return;
    const conversation = this.conversations.get(event.conversation_id);
    if (!conversation) return; // a conversation this page does not hold
    const { applied, terminal } = conversation.apply(event);
    if (!applied) return;
    if (terminal) this.answered(terminal);
    this.changed();
  }

  streamReady({ conversation_id: id, epoch }) {
    const conversation = this.conversation(id);
    if (conversation.epoch && epoch && conversation.epoch !== epoch) {
      this.refetch(id);
      return;
    }
    conversation.epoch = epoch;
    this.follow(conversation);
  }

  /** Ask the socket to follow a conversation from what this page last applied. */
  follow(conversation) {
    if (!conversation?.known || !this.socket) return;
    this.socket.send({
      type: "resume",
      conversation_id: conversation.id,
      epoch: conversation.epoch,
      after: conversation.lastId,
    });
  }

  /** Fields for the socket's auth frame: resume the notifications where this page stands. */
  socketAuthFields() {
    return this.notificationsAt ? { notifications: { ...this.notificationsAt } } : {};
  }

  socketReady(frame) {
    if (frame?.notifications_after) {
      this.notificationsAt = { after: frame.notifications_after, epoch: frame.notifications_epoch ?? "" };
    }
    if (this.current?.known) this.follow(this.current);
    const active = this.active && this.conversations.get(this.active.conversationId);
    if (active && active !== this.current) this.follow(active);
    this.drain();
  }

  socketFrame(frame) {
    // Notifications missed beyond recall: `ready` already says where they start now.
    if (frame.type === "reset" && frame.stream === "notifications") return;
    if (frame.type === "reset") return void this.refetch(frame.conversation_id);
    if (frame.type === "error") {
      this.logError(Object.assign(new Error(frame.message), { kind: "socket", code: frame.code }), {});
      return;
    }
    if (!frame.id || !frame.type) return;
    if (frame.conversation_id) return this.receive(frame);
    if (!this.notifications.accept(frame.id)) return;
    if (this.notificationsAt && compareIds(frame.id, this.notificationsAt.after) > 0) {
      this.notificationsAt.after = frame.id;
    }
    const text = notificationText(frame);
    if (text) this.notify({ level: "info", message: text });
  }

  socketStateChanged(state) {
    this.socketState = state;
    if (state === "offline") this.stream?.close();
    // Refused for good (policy): questions still work without the socket.
    if (state === "closed") this.drain();
    this.changed();
  }

  // --- loading -------------------------------------------------------------------

  async refreshList() {
    try {
      const body = await this.api.get("/api/conversations");
      this.list = body.conversations ?? [];
      this.changed();
    } catch (error) {
      this.notify({ level: "error", message: `Could not load your conversations: ${error.message}`, retry: () => this.refreshList() });
    }
  }

  async open(id) {
    this.currentId = id;
    const conversation = this.conversation(id);
    this.changed();
    if (!conversation.known) await this.refetch(id);
    else {
      await this.sync(conversation);
      this.follow(conversation);
    }
  }

  newChat() {
    this.currentId = null;
    this.changed();
  }

  /** Replace a conversation with the server's log (first open, or after `reset`). */
  async refetch(id) {
    const conversation = this.conversation(id);
    let body;
    try {
      body = await this.api.get(`/api/conversations/${encodeURIComponent(id)}/events`);
    } catch (error) {
      this.notify({ level: "error", message: `Could not load the conversation: ${error.message}`, retry: () => this.refetch(id) });
      return;
    }
    conversation.reset(body.epoch);
    this.applyAll(conversation, body.events);
    this.follow(conversation);
  }

  /** Catch up with the log from the last applied event. */
  async sync(conversation) {
    const params = new URLSearchParams({ after: conversation.lastId });
    if (conversation.epoch) params.set("epoch", conversation.epoch);
    let body;
    try {
      body = await this.api.get(`/api/conversations/${encodeURIComponent(conversation.id)}/events?${params}`);
    } catch (error) {
      this.logError(error, {});
      return;
    }
    if (body.reset) return this.refetch(conversation.id);
    conversation.epoch = body.epoch;
    this.applyAll(conversation, body.events);
  }

  applyAll(conversation, events) {
    const terminals = [];
    for (const event of events ?? []) {
      const { terminal } = conversation.apply(event);
      if (terminal) terminals.push(terminal);
    }
    for (const cmid of terminals) this.answered(cmid);
    this.changed();
  }

  async openEmail(id) {
    return this.api.get(`/api/emails/${encodeURIComponent(id)}`);
  }

  teardown() {
    this.closedForGood = true;
    this.stream?.close();
  }
}

function notificationText(frame) {
  const data = frame.data ?? {};
  if (typeof data.message === "string") return data.message;
  if (frame.type === "sync.done" && Number.isFinite(data.new_messages)) {
    return `${data.new_messages} new email${data.new_messages === 1 ? "" : "s"} synced.`;
  }
  return null;
}
