// The sidebar's conversation list, redrawn only when what it shows changed.

import { formatDate, h } from "./dom.js";

export function renderConversationList(list, session, controller) {
  const items = [...controller.list];
  const current = controller.current;
  if (current && current.turns.length && !items.some((item) => item.id === current.id)) {
    items.unshift({ id: current.id, title: current.title });
  }
  const signature = JSON.stringify([controller.currentId, items.map((i) => [i.id, i.title, i.last_active_at])]);
  if (signature === session.listSignature) return;
  session.listSignature = signature;
  list.replaceChildren(
    ...items.map((item) =>
      h(
        "li",
        {},
        h(
          "button",
          { type: "button", class: `conversation${item.id === controller.currentId ? " current" : ""}`, dataset: { conversationId: item.id }, "aria-current": item.id === controller.currentId ? "true" : null },
          h("span", { class: "conversation-title" }, item.title || "Untitled conversation"),
          item.last_active_at ? h("span", { class: "conversation-when" }, formatDate(new Date(item.last_active_at * 1000).toISOString())) : null,
        ),
      ),
    ),
  );
}
