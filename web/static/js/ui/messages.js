// The conversation: one element per turn (the question and its answer), keyed
// by client_message_id and redrawn only when that turn changed, so an answer
// streaming in does not rebuild the whole thread.

import { append, clear, formatDay, h } from "./dom.js";

const CATEGORY_NAMES = {
  recruiter_outreach: "recruiter",
};

function categoryName(category) {
  return CATEGORY_NAMES[category] ?? String(category).replaceAll("_", " ");
}

function windowPhrase(search) {
  const window = search.filters?.window;
  if (typeof window === "string" && window && !window.startsWith("last ")) return window;
  return `in the last ${search.window_days} day${search.window_days === 1 ? "" : "s"}`;
}

/** What was searched, in one line: the words or category, the sender, the window, the hits. */
export function searchedLine(search) {
  if (!search || search.window_days == null) return "";
  const filters = search.filters ?? {};
  const subject = [];
  if (filters.category) subject.push(`${categoryName(filters.category)} emails`);
  if (search.query) subject.push(`“${search.query}”`);
  const parts = [subject.length ? subject.join(" about ") : "all your mail"];
  if (Array.isArray(filters.from) && filters.from.length) parts.push(`from ${filters.from.join(" or ")}`);
  if (filters.attachment) parts.push(filters.attachment === true ? "with an attachment" : `with a ${filters.attachment} attachment`);
  if (filters.label) parts.push(`labelled ${filters.label}`);
  if (filters.unread) parts.push("unread");
  parts.push(windowPhrase(search));
  const hits = Number(search.total_hits ?? 0);
  const matched = `${hits.toLocaleString("en")} email${hits === 1 ? "" : "s"} matched`;
  return `Searched for ${parts.join(" ")} · ${matched}`;
}

const FILTER_LABELS = [
  ["from", "from"],
  ["window", "window"],
  ["category", "category"],
  ["label", "label"],
  ["attachment", "attachment"],
  ["unread", "unread"],
  ["from_me", "sent by you"],
];

/** The answer's filters as [name, value] chips: every filter the search used, and how. */
export function searchFilters(search) {
  if (!search || typeof search !== "object") return [];
  const filters = search.filters ?? {};
  const chips = [];
  if (search.intent && search.intent !== "find") chips.push(["intent", String(search.intent).replaceAll("_", " ")]);
  if (search.query) chips.push(["words", search.query]);
  for (const [key, label] of FILTER_LABELS) {
    const value = filters[key];
    if (value == null || value === false || (Array.isArray(value) && !value.length)) continue;
    if (value === true) chips.push([label, "yes"]);
    else if (Array.isArray(value)) chips.push([label, value.join(", ")]);
    else chips.push([label, key === "category" ? categoryName(value) : String(value)]);
  }
  if (search.count != null) chips.push(["count", String(search.count)]);
  if (Array.isArray(search.relaxed) && search.relaxed.length) chips.push(["relaxed", search.relaxed.map((s) => String(s).replaceAll("_", " ")).join(" → ")]);
  if (search.follow_up) chips.push(["refines", "the previous question"]);
  return chips;
}

function filterList(search) {
  const chips = searchFilters(search);
  if (!chips.length) return null;
  return h(
    "ul",
    { class: "search-filters", "aria-label": "What was searched" },
    chips.map(([name, value]) => h("li", { class: "search-filter", dataset: { filter: name } }, h("span", { class: "filter-name" }, `${name}: `), value)),
  );
}

/** Answer text with its [n] markers turned into buttons that open citation n. */
function answerBody(text, citations, openEmail) {
  const body = h("div", { class: "answer-text" });
  const parts = String(text).split(/(\[\d{1,2}\])/);
  for (const part of parts) {
    const marker = /^\[(\d{1,2})\]$/.exec(part);
    const citation = marker ? citations[Number(marker[1]) - 1] : null;
    if (citation) {
      body.append(
        h("button", { type: "button", class: "cite-marker", title: citation.subject || "Open email", onclick: () => openEmail(citation.id) }, marker[1]),
      );
    } else if (part) {
      body.append(part);
    }
  }
  return body;
}

function citationList(citations, openEmail) {
  if (!citations.length) return null;
  return h(
    "ol",
    { class: "citations", "aria-label": "Sources" },
    citations.map((citation, index) =>
      h(
        "li",
        {},
        h(
          "button",
          { type: "button", class: "citation", dataset: { emailId: citation.id }, onclick: () => openEmail(citation.id) },
          h("span", { class: "citation-number" }, String(index + 1)),
          h("span", { class: "citation-subject" }, citation.subject || "(no subject)"),
          h("span", { class: "citation-meta" }, `${citation.from || "unknown sender"} · ${formatDay(citation.received_at)}`),
        ),
      ),
    ),
  );
}

const LOCAL_NOTES = {
  queued: "Queued: it will be sent when the connection is back.",
  failed: "Not sent.",
};

function renderTurn(turn, openEmail) {
  const question = h(
    "div",
    { class: "bubble question" },
    h("p", { class: "question-text" }, turn.q || "(question not available)"),
    h("span", { class: "window-chip" }, turn.windowDays ? `${turn.windowDays} days` : ""),
  );
  const node = h("li", { class: `turn status-${turn.status}${turn.local ? ` local-${turn.local}` : ""}`, dataset: { cmid: turn.cmid, status: turn.status } }, question);
  if (turn.local && LOCAL_NOTES[turn.local]) node.append(h("p", { class: "turn-note" }, LOCAL_NOTES[turn.local]));
  if (turn.status === "superseded") {
    node.append(h("p", { class: "turn-note" }, "Superseded by a newer question."));
    return node;
  }
  if (turn.local === "queued" || turn.local === "failed") return node;
  const answer = h("div", { class: "bubble answer", "aria-live": turn.status === "streaming" ? "polite" : null });
  if (turn.status === "error") {
    answer.classList.add("answer-error");
    answer.setAttribute("role", "alert");
    append(answer, [h("p", {}, turn.error?.message || "The assistant failed to answer.")]);
  } else if (!turn.text && turn.status !== "done") {
    append(answer, [h("p", { class: "thinking" }, turn.search ? "Writing the answer" : "Searching your mail")]);
  } else {
    append(answer, [answerBody(turn.text, turn.citations, openEmail)]);
    if (turn.status === "done") append(answer, [citationList(turn.citations, openEmail)]);
  }
  const line = searchedLine(turn.search);
  if (line) answer.append(h("p", { class: "searched" }, line));
  const filters = filterList(turn.search);
  if (filters) answer.append(filters);
  node.append(answer);
  return node;
}

export class MessageList {
  constructor(list, scroller, openEmail) {
    this.list = list;
    this.scroller = scroller;
    this.openEmail = openEmail;
    this.nodes = new Map(); // cmid -> {node, signature}
    this.conversationId = undefined;
  }

  render(conversationId, turns) {
    const nearBottom = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 120;
    if (conversationId !== this.conversationId) {
      clear(this.list);
      this.nodes.clear();
      this.conversationId = conversationId;
    }
    const keep = new Set();
    let previous = null;
    for (const turn of turns) {
      keep.add(turn.cmid);
      const signature = JSON.stringify(turn);
      let entry = this.nodes.get(turn.cmid);
      if (!entry || entry.signature !== signature) {
        const node = renderTurn(turn, this.openEmail);
        if (entry) entry.node.replaceWith(node);
        entry = { node, signature };
        this.nodes.set(turn.cmid, entry);
      }
      const expectedPosition = previous ? previous.nextSibling : this.list.firstChild;
      if (entry.node !== expectedPosition) this.list.insertBefore(entry.node, expectedPosition);
      previous = entry.node;
    }
    for (const [cmid, entry] of this.nodes) {
      if (!keep.has(cmid)) {
        entry.node.remove();
        this.nodes.delete(cmid);
      }
    }
    if (nearBottom) this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}
