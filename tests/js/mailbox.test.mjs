import assert from "node:assert/strict";
import { test } from "node:test";

import { ago, MailboxModel } from "../../web/static/js/mailbox.js";
import { TusUpload } from "../../web/static/js/upload.js";

const NOW = Date.parse("2026-12-01T12:00:00Z");

function model(accounts) {
  const notes = [];
  const api = { get: async () => ({ accounts, warning: null }) };
  const m = new MailboxModel({ api, notify: (n) => notes.push(n), now: () => NOW });
  return { m, notes };
}

test("ago says minutes, hours and days", () => {
  assert.equal(ago("2026-12-01T11:57:00Z", NOW), "3 min ago");
  assert.equal(ago("2026-12-01T10:00:00Z", NOW), "2 h ago");
  assert.equal(ago(null, NOW), "never");
});

test("progress frames draw a bar; sync.done says what can be asked", async () => {
  const { m, notes } = model([{ id: "a1", provider: "mbox", address: "All mail.mbox", state: "syncing", message_count: 0, last_success_at: null }]);
  await m.refresh();
  m.receive({ id: "1-0", type: "sync.progress", data: { account_id: "a1", done: 500, total: 2000, rate: 250.4, eta_seconds: 6 } });
  const [syncing] = m.view();
  assert.equal(syncing.bar.pct, 25);
  assert.match(syncing.bar.text, /500 \/ 2,000 emails · 250 emails\/s · 6 s left/);
  m.receive({ id: "1-0", type: "sync.progress", data: { account_id: "a1", done: 9, total: 10 } }); // a replay
  assert.equal(m.view()[0].bar.pct, 25, "a frame seen before is ignored");
  m.receive({ id: "2-0", type: "sync.done", data: { account_id: "a1", added: 2000, message_count: 2000 } });
  const [done] = m.view();
  assert.equal(done.state, "idle");
  assert.equal(done.bar.pct, 100);
  assert.equal(notes.at(-1).message, "Import finished: you can ask about 2,000 emails now.");
  assert.match(m.removalText("a1"), /deletes the 2,000 emails of All mail.mbox and the uploaded file/);
});

test("a dropped PATCH resumes from HEAD's offset", async () => {
  const data = new Uint8Array(300_000);
  const file = new Blob([data]);
  file.name = "x.mbox";
  let kept = 0;
  const calls = [];
  const headers = (h) => ({ get: (k) => h[k] ?? null });
  const api = {
    request: async (method, path, options) => {
      calls.push(method);
      if (method === "POST") return { headers: headers({ Location: "/api/uploads/up_1" }) };
      if (method === "HEAD") return { headers: headers({ "Upload-Offset": String(kept) }) };
      const offset = Number(options.headers["Upload-Offset"]);
      assert.equal(offset, kept, "every PATCH starts at the server's offset");
      if (calls.filter((c) => c === "PATCH").length === 2) {
        kept += 1000; // the server kept part of it, then the connection dropped
        throw Object.assign(new Error("network"), { kind: "network", retryable: true });
      }
      kept = Math.min(file.size, offset + options.raw.size);
      return { headers: headers({ "Upload-Offset": String(kept), ...(kept === file.size ? { "Mailchat-Account-Id": "a_9" } : {}) }) };
    },
  };
  const upload = new TusUpload({ api, file, chunkBytes: 100_000, sleep: async () => {} });
  assert.equal(await upload.run(), "a_9");
  assert.equal(upload.resumes, 1);
  assert.ok(calls.includes("HEAD"));
});

test("pause and resume go to the server and the account shows it", async () => {
  const calls = [];
  const account = { id: "a2", provider: "imap", address: "me@example.org", state: "idle", message_count: 3, last_success_at: null, paused: false };
  const api = {
    get: async () => ({ accounts: [account], warning: null }),
    post: async (path) => {
      calls.push(path);
      return { account: { ...account, paused: path.endsWith("/pause") } };
    },
  };
  const m = new MailboxModel({ api, now: () => NOW });
  await m.refresh();
  assert.equal(m.view()[0].canSync, true);
  await m.setPaused("a2", true);
  assert.deepEqual(calls, ["/api/accounts/a2/pause"]);
  assert.equal(m.view()[0].paused, true);
  assert.equal(m.view()[0].canSync, false, "a paused account offers Resume, not Sync now");
  await m.setPaused("a2", false);
  assert.equal(calls.at(-1), "/api/accounts/a2/resume");
  assert.equal(m.view()[0].paused, false);
});
