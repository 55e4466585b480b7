// The answer stream: one EventSource per chat, never two.
//
// `ask` closes the stream it had (the newer question supersedes the older on
// the server, which ends the old answer with `done {cancelled: true}`), trades
// the access token for a single-use ticket, and opens GET /api/chat/stream.
// The browser's own EventSource reconnection is never used: a ticket works
// once, so a drop hands the rest of the answer to the WebSocket's resume
// (outcome "dropped"). A failure before the stream's `ready` means it never
// started; if the server says streaming is switched off (503 with
// X-Chat-Streaming-Disabled: 1) `ask` rejects with StreamingDisabledError, and
// the caller sends the same question to POST /api/chat instead.

export const ANSWER_EVENTS = ["question", "search", "hits", "delta", "done"];
// gunicorn refuses request lines over 4094 bytes; longer questions go over JSON.
export const MAX_STREAM_URL = 3500;
const TICKET_PLACEHOLDER = "x".repeat(64);

export class StreamingDisabledError extends Error {
  constructor(retryAfterMs = 60_000) {
    super("Streaming is switched off on the server.");
    this.name = "StreamingDisabledError";
    this.retryAfterMs = retryAfterMs;
  }
}

/** The stream could not start (not the canary); the caller asks over JSON instead. */
export class StreamFailedError extends Error {
  constructor(reason) {
    super(`The answer stream could not start (${reason}).`);
    this.name = "StreamFailedError";
    this.reason = reason;
  }
}

export function streamUrl({ q, windowDays, conversationId, cmid }, ticket) {
  const params = new URLSearchParams({ q, window_days: String(windowDays), client_message_id: cmid });
  if (conversationId) params.set("conversation_id", conversationId);
  params.set("ticket", ticket);
  return `/api/chat/stream?${params}`;
}

export class StreamManager {
  /**
   * deps: EventSourceImpl, getTicket() -> Promise<string>, probe() -> Promise<{state,
   * retryAfterMs}> (state "disabled" | "enabled" | "unreachable"), onReady({conversation_id,
   * epoch, client_message_id}), onEvent(event), now().
   */
  constructor({ EventSourceImpl, getTicket, probe, onReady = () => {}, onEvent = () => {}, now = Date.now }) {
    this.EventSourceImpl = EventSourceImpl;
    this.getTicket = getTicket;
    this.probe = probe;
    this.onReady = onReady;
    this.onEvent = onEvent;
    this.now = now;
    this.gen = 0;
    this.current = null;
    this.disabledUntil = 0;
    this.opened = 0; // EventSources created, for the tests' "never two at once"
  }

  get activeCmid() {
    return this.current?.cmid ?? null;
  }

  get open() {
    return this.current !== null;
  }

  /** Whether a question fits in a stream URL (else it is asked over JSON). */
  fits(request) {
    return streamUrl(request, TICKET_PLACEHOLDER).length <= MAX_STREAM_URL;
  }

  /**
   * Ask and stream. Resolves {outcome}: "terminal" (this answer's done/error arrived),
   * "dropped" (cut mid-answer; the socket resumes it) or "superseded" (closed for a
   * newer question). Rejects StreamingDisabledError / StreamFailedError before `ready`,
   * or the ticket request's ApiError.
   */
  async ask(request) {
    this.close();
    const gen = ++this.gen;
    if (this.now() < this.disabledUntil) throw new StreamingDisabledError(this.disabledUntil - this.now());
    if (!this.fits(request)) throw new StreamFailedError("question too long for a stream URL");
    const ticket = await this.getTicket();
    if (gen !== this.gen) return { outcome: "superseded" };
    return new Promise((resolve, reject) => {
      const es = new this.EventSourceImpl(streamUrl(request, ticket));
      this.opened += 1;
      let ready = false;
      const current = { es, gen, cmid: request.cmid, resolve, settled: false };
      this.current = current;
      const settle = (fn, value) => {
        if (current.settled) return;
        current.settled = true;
        es.close();
        if (this.current === current) this.current = null;
        fn(value);
      };
      current.settle = settle;
      const stale = () => gen !== this.gen || current.settled;
      const onAnswerEvent = (message) => {
        if (stale()) return;
        let event;
        try {
          event = JSON.parse(message.data);
        } catch {
          return;
        }
        this.onEvent(event);
        const terminal = event.type === "done" || event.type === "error";
        if (terminal && event.data?.client_message_id === request.cmid) settle(resolve, { outcome: "terminal" });
      };
      es.addEventListener("ready", (message) => {
        if (stale()) return;
        ready = true;
        try {
          this.onReady(JSON.parse(message.data));
        } catch {
          // a malformed control message changes nothing
        }
      });
      for (const type of ANSWER_EVENTS) es.addEventListener(type, onAnswerEvent);
      es.addEventListener("reconnect", () => {
        if (!stale()) settle(resolve, { outcome: "dropped" });
      });
      es.addEventListener("error", (message) => {
        if (stale()) return;
        // `event: error` from the server is the answer's error event (it has data);
        // a bare error is the connection failing.
        if (message && message.data !== undefined) return onAnswerEvent(message);
        es.close();
        if (ready) return settle(resolve, { outcome: "dropped" });
        current.settled = true;
        if (this.current === current) this.current = null;
        this.probe().then(
          (result) => {
            if (result.state === "disabled") {
              this.disabledUntil = this.now() + (result.retryAfterMs ?? 60_000);
              reject(new StreamingDisabledError(result.retryAfterMs ?? 60_000));
            } else {
              reject(new StreamFailedError(result.state));
            }
          },
          () => reject(new StreamFailedError("unreachable")),
        );
      });
    });
  }

  /** Close the open stream (a newer question, another conversation, teardown). */
  close() {
    this.gen += 1;
    const current = this.current;
    if (current) current.settle(current.resolve, { outcome: "superseded" });
    this.current = null;
  }
}
