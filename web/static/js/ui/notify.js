// Notifications ("toasts"): errors with a retry button when there is something
// to retry, auto-dismissed after a while, at most a few on screen at once.

import { h } from "./dom.js";

const DISMISS_MS = { error: 10_000, warning: 8_000, info: 5_000 };
const MAX_VISIBLE = 4;

export class Notifier {
  constructor(container, timers) {
    this.container = container;
    this.timers = timers;
  }

  show({ level = "info", message, retry = null, dismissMs }) {
    const toast = h("div", { class: `toast toast-${level}`, role: level === "error" ? "alert" : "status" });
    let timer = null;
    const dismiss = () => {
      this.timers.clearTimeout(timer);
      toast.remove();
    };
    toast.append(h("p", { class: "toast-message" }, message));
    const actions = h("div", { class: "toast-actions" });
    if (retry) {
      actions.append(
        h("button", { type: "button", class: "toast-retry", onclick: () => (dismiss(), retry()) }, "Retry"),
      );
    }
    actions.append(h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", onclick: dismiss }, "×"));
    toast.append(actions);
    this.container.append(toast);
    while (this.container.children.length > MAX_VISIBLE) this.container.firstElementChild.remove();
    timer = this.timers.setTimeout(dismiss, dismissMs ?? DISMISS_MS[level] ?? 8000);
    return dismiss;
  }

  clear() {
    this.container.replaceChildren();
  }
}
