// The email viewer: a modal <dialog> showing a cited email's subject, sender,
// recipients, date, labels and body text.

import { append, clear, formatDate, h } from "./dom.js";

export class EmailView {
  constructor(dialog, life) {
    this.dialog = dialog;
    this.body = dialog.querySelector(".email-content");
    life.listen(dialog.querySelector(".email-close"), "click", () => dialog.close());
  }

  loading() {
    clear(this.body).append(h("p", { class: "muted" }, "Opening the email…"));
    if (!this.dialog.open) this.dialog.showModal();
  }

  show(email) {
    const row = (label, value) => (value ? h("div", { class: "email-row" }, h("dt", {}, label), h("dd", {}, value)) : null);
    append(clear(this.body), [
      h("h2", { class: "email-subject", id: "email-subject" }, email.subject || "(no subject)"),
      h(
        "dl",
        { class: "email-meta" },
        row("From", email.from),
        row("To", (email.to || []).join(", ")),
        row("Cc", (email.cc || []).join(", ")),
        row("Date", formatDate(email.received_at)),
        row("Labels", (email.labels || []).join(", ")),
        row("Attachments", (email.attachment_names || []).join(", ")),
      ),
      h("pre", { class: "email-body" }, email.body || "(no text)"),
      email.body_truncated ? h("p", { class: "muted" }, "The body is cut here; it is very long.") : null,
    ]);
    if (!this.dialog.open) this.dialog.showModal();
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }
}
