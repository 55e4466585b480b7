// The connection indicator (connected / connecting / reconnecting in Ns /
// offline) and the banner shown while disconnected. The countdown ticks once
// a second only while a reconnect is scheduled.

import { append, h } from "./dom.js";

const LABELS = {
  idle: "Not connected",
  connecting: "Connecting…",
  open: "Connected",
  offline: "Offline",
  closed: "Disconnected",
};

export class StatusView {
  constructor({ indicator, banner, timers, onReconnectNow, stats }) {
    this.indicator = indicator;
    this.banner = banner;
    this.timers = timers;
    this.onReconnectNow = onReconnectNow;
    this.stats = stats;
    this.ticker = null;
    this.state = "idle";
    this.info = {};
    this.everOpen = false;
  }

  update(state, info = {}) {
    this.state = state;
    this.info = info;
    if (state === "open") this.everOpen = true;
    this.timers.clearInterval(this.ticker);
    this.ticker = null;
    if (state === "reconnecting" && info.nextRetryAt) {
      this.ticker = this.timers.setInterval(() => this.draw(), 1000);
    }
    this.draw();
  }

  secondsLeft() {
    if (!this.info.nextRetryAt) return 0;
    return Math.max(0, Math.ceil((this.info.nextRetryAt - Date.now()) / 1000));
  }

  draw() {
    const { state } = this;
    const label = state === "reconnecting" ? `Reconnecting in ${this.secondsLeft()} s` : LABELS[state];
    this.indicator.dataset.state = state;
    this.indicator.querySelector(".status-label").textContent = label;
    const stats = this.stats.snapshot();
    this.indicator.title =
      `Connection: ${label}\nReconnect attempts: ${stats.reconnectAttempts}\n` +
      `Close codes: ${Object.entries(stats.closeCodes).map(([c, n]) => `${c}×${n}`).join(", ") || "none"}\n` +
      `Mean connection: ${stats.meanConnectionMs == null ? "n/a" : `${Math.round(stats.meanConnectionMs / 1000)} s`}`;
    const disconnected = state === "offline" || state === "reconnecting" || (state === "connecting" && this.everOpen) || (state === "closed" && this.info.reason && this.info.reason !== "stopped");
    this.banner.hidden = !disconnected;
    if (!disconnected) return;
    this.banner.dataset.state = state;
    this.banner.replaceChildren();
    if (state === "offline") {
      this.banner.append(h("span", {}, "You are offline. Messages you send will go out when you are back online."));
    } else if (state === "closed") {
      this.banner.append(h("span", {}, "The server refused the live connection. Reload the page to try again."));
    } else {
      const when = state === "reconnecting" ? `reconnecting in ${this.secondsLeft()} s` : "reconnecting…";
      append(this.banner, [
        h("span", {}, `Connection lost — ${when}. Answers already on screen stay; nothing you send is lost.`),
        state === "reconnecting" ? h("button", { type: "button", class: "banner-action", onclick: () => this.onReconnectNow() }, "Reconnect now") : null,
      ]);
    }
  }

  stop() {
    this.timers.clearInterval(this.ticker);
    this.ticker = null;
  }
}
