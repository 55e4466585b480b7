// The person's mailboxes (accounts) as the page shows them: loaded from GET /api/accounts
// (after a reload that is the current state, progress included), then kept current by the
// notification frames the WebSocket delivers: sync.progress {account_id, done, total, rate},
// sync.done and sync.error. No DOM here: ui/mailbox.js draws `view()`.

const MINUTE = 60;

/** "just now", "3 min ago", "2 h ago", "5 days ago" (null: "never"). */
export function ago(iso, nowMs) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000));
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.max(1, Math.round(seconds / MINUTE))} min ago`;
  if (seconds < 86_400) return `${Math.round(seconds / 3600)} h ago`;
  const days = Math.round(seconds / 86_400);
  return `${days} day${days === 1 ? "" : "s"} ago`;
}

/** "42 s", "3 min", "1 h 5 min". */
export function duration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export function bytes(count) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = count;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(unit && value < 10 ? 1 : 0)} ${units[unit]}`;
}

const num = (n) => Number(n || 0).toLocaleString("en");

export class MailboxModel {
  /** deps: api (Api), notify({level, message}), onChange(), now(). */
  constructor({ api, notify = () => {}, onChange = () => {}, now = Date.now }) {
    this.api = api;
    this.notify = notify;
    this.onChange = onChange;
    this.now = now;
    this.accounts = new Map();
    this.warning = null;
    this.seen = new Set();
    this.loaded = false;
  }

  async refresh() {
    const body = await this.api.get("/api/accounts");
    this.accounts = new Map(body.accounts.map((account) => [account.id, account]));
    this.warning = body.warning ?? null;
    this.loaded = true;
    this.onChange();
  }

  /** A notification frame from the socket; returns true if it was about an account. */
  receive(frame) {
    const data = frame?.data ?? {};
    if (!String(frame?.type ?? "").startsWith("sync.") || !data.account_id) return false;
    if (frame.id) {
      if (this.seen.has(frame.id)) return true;
      this.seen.add(frame.id);
    }
    const account = this.accounts.get(data.account_id);
    if (!account) {
      this.refresh().catch(() => {}); // an account this tab has not listed yet
      return true;
    }
    if (frame.type === "sync.progress") {
      account.state = "syncing";
      account.progress = data;
    } else if (frame.type === "sync.done") {
      account.state = "idle";
      account.progress = null;
      account.last_error = null;
      account.message_count = data.message_count ?? account.message_count;
      account.last_success_at = new Date(this.now()).toISOString();
      account.finished = data;
      const count = num(data.message_count);
      const message = account.provider === "mbox" ? `Import finished: you can ask about ${count} emails now.` : `${account.address}: ${data.text || "synced"}. You can ask about ${count} emails now.`;
      this.notify({ level: "info", message });
    } else if (frame.type === "sync.error") {
      account.state = data.state || "error";
      account.progress = null;
      account.last_error = data.text || "The sync failed.";
      this.notify({ level: "error", message: `${account.address}: ${account.last_error}` });
    }
    this.onChange();
    return true;
  }

  view() {
    const now = this.now();
    return [...this.accounts.values()].map((account) => {
      const progress = account.progress;
      let bar = null;
      if (progress && account.state === "syncing") {
        const total = progress.total || null;
        const pct = total ? Math.min(100, Math.round((100 * progress.done) / total)) : null;
        const parts = [total ? `${num(progress.done)} / ${num(total)} emails` : `${num(progress.done)} emails`];
        if (progress.rate) parts.push(`${num(Math.round(progress.rate))} emails/s`);
        if (progress.eta_seconds != null) parts.push(`${duration(progress.eta_seconds)} left`);
        bar = { pct, text: parts.join(" · ") };
      } else if (account.finished && account.state === "idle") {
        bar = { pct: 100, text: `${num(account.message_count)} emails imported` };
      }
      return {
        id: account.id,
        provider: account.provider,
        address: account.address,
        state: account.state,
        count: account.message_count ?? 0,
        countText: `${num(account.message_count)} emails`,
        lastSynced: account.state === "syncing" ? "syncing now" : `last synced ${ago(account.last_success_at, now)}`,
        error: account.last_error,
        bar,
        canSync: account.provider !== "mbox" && account.state !== "needs_reauth" && !account.paused,
        paused: Boolean(account.paused),
        reconnect: account.state === "needs_reauth",
      };
    });
  }

  /** What removing an account deletes, in words (the confirmation names it). */
  removalText(id) {
    const account = this.accounts.get(id);
    if (!account) return "";
    const what = `${num(account.message_count)} emails of ${account.address}`;
    const file = account.provider === "mbox" ? " and the uploaded file" : "";
    return `Remove ${account.address}? This deletes the ${what}${file} from Mailchat. The mailbox itself is not touched.`;
  }

  async syncNow(id) {
    await this.api.post(`/api/accounts/${encodeURIComponent(id)}/sync`, undefined, { retries: 0 });
    const account = this.accounts.get(id);
    if (account) account.state = "syncing";
    this.onChange();
  }

  /** Pause (true) or resume (false) an account's syncing. */
  async setPaused(id, paused) {
    const body = await this.api.post(`/api/accounts/${encodeURIComponent(id)}/${paused ? "pause" : "resume"}`, undefined, { retries: 0 });
    if (body?.account) this.accounts.set(id, body.account);
    this.onChange();
  }

  async remove(id) {
    // Deleting tens of thousands of documents takes a while; a retry meanwhile answers 202.
    await this.api.request("DELETE", `/api/accounts/${encodeURIComponent(id)}`, { retries: 2, timeoutMs: 120_000 });
    this.accounts.delete(id);
    this.onChange();
  }
}
