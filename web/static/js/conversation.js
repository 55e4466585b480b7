// One conversation as the page shows it, built only from its event log.
//
// Events arrive from the SSE stream, the WebSocket and JSON replays alike; a
// StreamCursor drops any already applied, so whichever transport delivers an
// event first wins and the others are ignored. The rendering is a function
// of the log order alone, so a live view and a replay look the same:
//
// - a `question` starts a turn (or confirms the one echoed when it was typed);
// - `search`, `hits` and `delta`s fill its answer; `done` ends it;
// - the server's rule "a newer question supersedes the running one" is mirrored:
//   when a question arrives, every earlier turn still waiting is superseded, and
//   a `done` with `cancelled: true` marks its turn superseded too. Nothing of a
//   superseded answer is rendered.

import { StreamCursor } from "./dedup.js";

export const TERMINAL = new Set(["done", "error", "superseded"]);

function newAnswer() {
  return { status: "waiting", deltas: [], text: "", citations: [], search: null, error: null, provisional: false };
}

export class Conversation {
  constructor(id) {
    this.id = id;
    this.epoch = null;
    this.cursor = new StreamCursor();
    this.turns = [];
    this.byCmid = new Map();
    this.title = "";
  }

  get lastId() {
    return this.cursor.lastId;
  }

  /** Known to the server (it has an epoch): it can be resumed. */
  get known() {
    return this.epoch !== null;
  }

  turn(cmid) {
    return this.byCmid.get(cmid) ?? null;
  }

  lastTurn() {
    return this.turns.at(-1) ?? null;
  }

  /** The turn of a message just typed, shown before the server confirms it. */
  addLocal({ cmid, q, windowDays, status = "sending" }) {
    let turn = this.byCmid.get(cmid);
    if (!turn) {
      turn = { cmid, q, windowDays, confirmed: false, local: status, answer: newAnswer() };
      this.byCmid.set(cmid, turn);
      this.turns.push(turn);
      if (!this.title) this.title = q;
    } else {
      turn.local = status;
    }
    return turn;
  }

  setLocal(cmid, status) {
    const turn = this.byCmid.get(cmid);
    if (turn) turn.local = status;
  }

  removeLocal(cmid) {
    const turn = this.byCmid.get(cmid);
    if (!turn || turn.confirmed) return;
    this.byCmid.delete(cmid);
    this.turns = this.turns.filter((t) => t !== turn);
  }

  /**
   * This page is about to ask a newer question: running answers are superseded
   * for now. If one's (not cancelled) `done` arrives before the newer question
   * is in the log, it finished first after all and is shown.
   */
  supersedeRunning(exceptCmid) {
    for (const turn of this.turns) {
      const asked = turn.confirmed || turn.local === "sending";
      if (turn.cmid !== exceptCmid && asked && !TERMINAL.has(turn.answer.status)) {
        turn.answer.status = "superseded";
        turn.answer.provisional = true;
      }
    }
  }

  /** Apply one log event; returns {applied, terminal: cmid|null}. */
  apply(event) {
    if (!event || !this.cursor.accept(event.id)) return { applied: false, terminal: null };
    const data = event.data || {};
    const cmid = data.client_message_id;
    if (!cmid) return { applied: true, terminal: null };
    let turn = this.byCmid.get(cmid);
    if (!turn) {
      // Asked elsewhere (another tab, a replay): the log is the truth.
      turn = { cmid, q: data.q ?? "", windowDays: data.window_days ?? null, confirmed: false, local: null, answer: newAnswer() };
      this.byCmid.set(cmid, turn);
      this.turns.push(turn);
    }
    const answer = turn.answer;
    switch (event.type) {
      case "question":
        turn.confirmed = true;
        turn.local = null;
        turn.q = data.q ?? turn.q;
        turn.windowDays = data.window_days ?? turn.windowDays;
        if (!this.title) this.title = turn.q;
        for (const other of this.turns) {
          if (other !== turn && other.confirmed && (!TERMINAL.has(other.answer.status) || other.answer.provisional)) {
            other.answer.status = "superseded";
            other.answer.provisional = false;
          }
        }
        return { applied: true, terminal: null };
      case "search":
        answer.search = data.search ?? null;
        if (answer.status === "waiting") answer.status = "streaming";
        return { applied: true, terminal: null };
      case "hits":
        answer.citations = data.citations ?? [];
        if (answer.status === "waiting") answer.status = "streaming";
        return { applied: true, terminal: null };
      case "delta":
        answer.deltas[data.index ?? answer.deltas.length] = data.text ?? "";
        if (answer.status === "waiting") answer.status = "streaming";
        if (answer.status !== "done") answer.text = answer.deltas.join("");
        return { applied: true, terminal: null };
      case "done":
        return { applied: true, terminal: this.finish(turn, data) };
      case "error":
        if (answer.status !== "superseded" || answer.provisional) {
          answer.status = "error";
          answer.provisional = false;
          answer.error = { code: data.code || "assistant_failed", message: data.message || "The assistant failed to answer." };
        }
        return { applied: true, terminal: cmid };
      default:
        return { applied: true, terminal: null };
    }
  }

  finish(turn, data) {
    const answer = turn.answer;
    if (data.cancelled) {
      answer.status = "superseded";
      answer.provisional = false;
      return turn.cmid;
    }
    answer.text = data.answer ?? answer.text;
    answer.citations = data.citations ?? answer.citations;
    answer.search = data.search ?? answer.search;
    if (answer.status === "superseded" && !answer.provisional) return turn.cmid; // a newer question came first
    answer.status = "done";
    answer.provisional = false;
    return turn.cmid;
  }

  /**
   * An answer that arrived as one JSON object (POST /api/chat, when streaming is
   * off). It is shown at once; the log's own events, fetched next, then find
   * the turn finished and change nothing.
   */
  applyAnswer(cmid, { answer, citations, search }) {
    const turn = this.byCmid.get(cmid);
    if (!turn) return null;
    turn.local = null;
    // The JSON answer does not say whether it was cancelled: a turn this page
    // already superseded waits for the log's own `done` to decide.
    if (turn.answer.status === "superseded") return cmid;
    turn.confirmed = true;
    return this.finish(turn, { cancelled: false, answer, citations, search });
  }

  /** The log was reset (epoch changed or trimmed): forget what came from it, keep unsent turns. */
  reset(epoch = null) {
    this.epoch = epoch;
    this.cursor = new StreamCursor();
    this.turns = this.turns.filter((t) => !t.confirmed);
    this.byCmid = new Map(this.turns.map((t) => [t.cmid, t]));
  }

  /** Turns to render: superseded answers render nothing but a note. */
  view() {
    return this.turns.map((turn) => ({
      cmid: turn.cmid,
      q: turn.q,
      windowDays: turn.windowDays,
      local: turn.local,
      status: turn.answer.status,
      text: turn.answer.status === "superseded" ? "" : turn.answer.text,
      citations: turn.answer.status === "superseded" ? [] : turn.answer.citations,
      search: turn.answer.status === "superseded" ? null : turn.answer.search,
      error: turn.answer.error,
    }));
  }
}
