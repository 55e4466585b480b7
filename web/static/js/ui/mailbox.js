// The mailbox view beside the chat: the person's accounts with state, counts and live
// progress, the three ways to add one (Takeout upload, IMAP form, Gmail) and the password
// change. Every listener and timer belongs to the session's Lifetime.

import { bytes, duration, MailboxModel } from "../mailbox.js";
import { TusUpload } from "../upload.js";
import { h } from "./dom.js";

const STATE_LABEL = { syncing: "syncing", idle: "idle", needs_reauth: "needs reconnecting", error: "error" };

export class MailboxView {
  /** deps: doc, api, config, life (Lifetime), notify(note), confirm(text) -> bool, go(url). */
  constructor({ doc, api, config, life, notify, confirm, go }) {
    this.doc = doc;
    this.$ = (selector) => doc.querySelector(selector);
    this.api = api;
    this.config = config;
    this.life = life;
    this.notify = notify;
    this.confirm = confirm;
    this.go = go;
    this.model = new MailboxModel({ api, notify, onChange: () => this.render() });
    this.upload = null;
  }

  start() {
    const { life } = this;
    life.listen(this.$("#account-list"), "click", (event) => this.action(event));
    const input = this.$("#upload-input");
    life.listen(input, "change", () => input.files[0] && this.startUpload(input.files[0]));
    const zone = this.$("#dropzone");
    life.listen(zone, "dragover", (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
    life.listen(zone, "dragleave", () => zone.classList.remove("dragging"));
    life.listen(zone, "drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      const file = event.dataTransfer?.files?.[0];
      if (file) this.startUpload(file);
    });
    life.listen(this.$("#imap-form"), "submit", (event) => this.addImap(event));
    life.listen(this.$("#imap-test"), "click", () => this.testImap());
    life.listen(this.$("#gmail-connect"), "click", () => this.connectGmail());
    life.listen(this.$("#password-form"), "submit", (event) => this.changePassword(event));
    this.$("#gmail-note").hidden = Boolean(this.config.gmail_enabled);
    this.$("#gmail-connect").disabled = !this.config.gmail_enabled;
    life.setInterval(() => this.render(), 30_000); // "3 min ago" moves on
    this.reload();
  }

  async reload() {
    try {
      await this.model.refresh();
    } catch (error) {
      if (error?.name !== "AbortError") this.notify({ level: "error", message: `Could not load your mailboxes: ${error.message}`, retry: () => this.reload() });
    }
  }

  receive(frame) {
    return this.model.receive(frame);
  }

  render() {
    const items = this.model.view();
    this.$("#account-empty").hidden = items.length > 0 || !this.model.loaded;
    const warning = this.$("#mailbox-warning");
    warning.textContent = this.model.warning ?? "";
    warning.hidden = !this.model.warning;
    this.$("#account-list").replaceChildren(...items.map((item) => this.accountItem(item)));
  }

  accountItem(item) {
    const bar = item.bar
      ? h(
          "div",
          { class: "sync-progress" },
          h("progress", { max: 100, value: item.bar.pct ?? null, "aria-label": `Progress of ${item.address}` }),
          h("span", { class: "sync-progress-text" }, item.bar.pct != null ? `${item.bar.pct} % · ${item.bar.text}` : item.bar.text),
        )
      : null;
    const button = (act, label, extra = {}) => h("button", { type: "button", class: "link", dataset: { act, accountId: item.id }, ...extra }, label);
    return h(
      "li",
      { class: "account-item", dataset: { accountId: item.id, state: item.state } },
      h(
        "div",
        { class: "account-line" },
        h("span", { class: "provider" }, item.provider === "mbox" ? "Upload" : item.provider === "imap" ? "IMAP" : "Gmail"),
        h("span", { class: "account-address" }, item.address),
        h("span", { class: `state state-${item.paused ? "paused" : item.state}` }, item.paused ? "paused" : (STATE_LABEL[item.state] ?? item.state)),
      ),
      h("div", { class: "account-meta muted" }, h("span", { class: "account-count" }, item.countText), " · ", h("span", {}, item.lastSynced)),
      item.error ? h("p", { class: "form-error account-error" }, item.error) : null,
      bar,
      h(
        "div",
        { class: "account-actions" },
        item.canSync ? button("sync", "Sync now") : null,
        item.paused ? button("resume", "Resume") : button("pause", "Pause", { "aria-label": `Pause ${item.address}` }),
        item.reconnect ? button("reconnect", "Reconnect") : null,
        button("remove", "Remove", { "aria-label": `Remove ${item.address}` }),
      ),
    );
  }

  async action(event) {
    const target = event.target.closest("[data-act]");
    if (!target) return;
    const { act, accountId } = target.dataset;
    const account = this.model.accounts.get(accountId);
    try {
      if (act === "sync") await this.model.syncNow(accountId);
      else if (act === "pause" || act === "resume") await this.model.setPaused(accountId, act === "pause");
      else if (act === "remove") {
        if (!this.confirm(this.model.removalText(accountId))) return;
        await this.model.remove(accountId);
        this.notify({ level: "info", message: `${account?.address ?? "The account"} and its mail were removed.` });
      } else if (act === "reconnect") {
        if (account?.provider === "gmail") await this.connectGmail();
        else this.fillImap(account);
      }
    } catch (error) {
      if (error?.name !== "AbortError") this.notify({ level: "error", message: error.message });
    }
  }

  fillImap(account) {
    const form = this.$("#imap-form");
    const settings = account?.settings ?? {};
    form.elements.host.value = settings.host ?? "";
    form.elements.port.value = settings.port ?? 993;
    form.elements.username.value = settings.username ?? "";
    form.elements.password.focus();
    this.reconnecting = account?.id ?? null;
  }

  // --- upload ----------------------------------------------------------------------

  async startUpload(file) {
    if (this.upload) return this.notify({ level: "warning", message: "One upload at a time: wait for this one to finish." });
    if (file.size > this.config.upload_max_bytes) return this.notify({ level: "error", message: `That file is larger than ${bytes(this.config.upload_max_bytes)}.` });
    const status = this.$("#upload-status");
    const bar = this.$("#upload-bar");
    const text = this.$("#upload-text");
    status.hidden = false;
    this.$("#upload-error").hidden = true;
    bar.value = 0;
    text.textContent = `Starting ${file.name}…`;
    const controller = new AbortController();
    this.life.signal.addEventListener("abort", () => controller.abort(), { once: true });
    this.upload = new TusUpload({
      api: this.api,
      file,
      chunkBytes: this.config.upload_chunk_bytes,
      sleep: (ms, signal) => this.life.sleep(ms, signal),
      signal: controller.signal,
      onProgress: ({ sent, total, rate, etaSeconds, resumes }) => {
        bar.value = total ? Math.floor((100 * sent) / total) : 0;
        const eta = etaSeconds != null && sent < total ? ` · ${duration(etaSeconds)} left` : "";
        text.textContent = `${bytes(sent)} of ${bytes(total)} sent · ${bytes(rate)}/s${eta}${resumes ? ` · resumed ${resumes}×` : ""}`;
      },
    });
    try {
      await this.upload.run();
      text.textContent = `${file.name} uploaded; importing…`;
      await this.model.refresh();
    } catch (error) {
      if (error?.name === "AbortError") return;
      const shown = this.$("#upload-error");
      shown.textContent = error.message;
      shown.hidden = false;
      status.hidden = true;
    } finally {
      this.upload = null;
      this.$("#upload-input").value = "";
    }
  }

  // --- IMAP ------------------------------------------------------------------------

  imapBody() {
    const form = this.$("#imap-form").elements;
    const folders = form.folders.value
      .split(",")
      .map((f) => f.trim())
      .filter(Boolean);
    const tls = form.tls.value;
    return {
      provider: "imap",
      host: form.host.value.trim(),
      port: Number(form.port.value || 993),
      tls: tls === "ssl" ? true : tls === "none" ? false : tls,
      username: form.username.value.trim(),
      password: form.password.value,
      ...(folders.length ? { folders } : {}),
    };
  }

  showImapResult(ok, message, field = null) {
    const result = this.$("#imap-result");
    result.textContent = message;
    result.className = ok ? "form-ok" : "form-error";
    result.hidden = false;
    for (const input of this.$("#imap-form").querySelectorAll("[name]")) input.classList.toggle("invalid", !ok && input.name === field);
  }

  async testImap() {
    const button = this.$("#imap-test");
    button.disabled = true;
    this.showImapResult(true, "Testing…");
    try {
      const answer = await this.api.post("/api/accounts/imap/test", this.imapBody(), { idempotent: true, retries: 0, timeoutMs: 15_000 });
      this.showImapResult(answer.ok, answer.message, answer.field);
      return answer.ok;
    } catch (error) {
      this.showImapResult(false, error.message, error.field);
      return false;
    } finally {
      button.disabled = false;
    }
  }

  async addImap(event) {
    event.preventDefault();
    const body = this.imapBody();
    try {
      if (this.reconnecting) {
        await this.api.request("PATCH", `/api/accounts/${encodeURIComponent(this.reconnecting)}`, { body: { password: body.password }, retries: 0 });
        this.reconnecting = null;
      } else {
        await this.api.post("/api/accounts", body, { retries: 0 });
      }
      this.$("#imap-form").elements.password.value = "";
      this.showImapResult(true, `${body.username}@${body.host} added; the first sync has started.`);
      await this.model.refresh();
    } catch (error) {
      this.showImapResult(false, error.message, error.field);
    }
  }

  // --- Gmail and password ------------------------------------------------------------

  async connectGmail() {
    try {
      const { url } = await this.api.get("/api/accounts/gmail/connect", { retries: 1 });
      this.go(url);
    } catch (error) {
      this.notify({ level: "error", message: error.message });
    }
  }

  async changePassword(event) {
    event.preventDefault();
    const form = this.$("#password-form").elements;
    const result = this.$("#password-result");
    try {
      await this.api.post("/api/auth/password", { old_password: form.old_password.value, new_password: form.new_password.value }, { retries: 0 });
      result.textContent = "Password changed; your other sessions were logged out.";
      result.className = "form-ok";
      form.old_password.value = "";
      form.new_password.value = "";
    } catch (error) {
      result.textContent = error.message;
      result.className = "form-error";
    }
    result.hidden = false;
  }
}
