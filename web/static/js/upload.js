// A resumable upload over the tus 1.0 core protocol (https://tus.io/protocols/resumable-upload),
// as the server speaks it at /api/uploads: create with the length, then PATCH slices of the
// file at the server's offset. A dropped request does not restart the file: HEAD says how
// many bytes the server kept and the next PATCH starts there. The file is read slice by
// slice (File.slice), never whole, so a several-GB Takeout fits in a tab's memory.

const TUS = { "Tus-Resumable": "1.0.0" };
const MAX_FAILURES = 20;

/** base64 of a UTF-8 string (tus metadata values are base64). */
export function base64Utf8(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export class TusUpload {
  /**
   * deps: api (Api), file (Blob with name/size), chunkBytes, onProgress({sent, total, rate,
   * etaSeconds}), sleep(ms, signal), now(), signal (aborts the upload).
   */
  constructor({ api, file, chunkBytes, onProgress = () => {}, sleep, now = Date.now, signal = null }) {
    this.api = api;
    this.file = file;
    this.chunkBytes = Math.max(64 * 1024, chunkBytes || 8 * 1024 * 1024);
    this.onProgress = onProgress;
    this.sleep = sleep;
    this.now = now;
    this.signal = signal;
    this.location = null;
    this.offset = 0;
    this.accountId = null;
    this.resumes = 0;
  }

  /** Upload the whole file; resolves with the account id the import runs as. */
  async run() {
    const created = await this.api.request("POST", "/api/uploads", {
      headers: { ...TUS, "Upload-Length": String(this.file.size), "Upload-Metadata": `filename ${base64Utf8(this.file.name || "upload.mbox")}` },
      full: true,
      retries: 2,
      idempotent: false,
      signal: this.signal,
    });
    this.location = created.headers.get("Location");
    this.started = this.now();
    this.startOffset = 0;
    this.report();
    let failures = 0;
    while (this.offset < this.file.size) {
      try {
        await this.patch();
        failures = 0;
      } catch (error) {
        if (error?.name === "AbortError") throw error;
        const resumable = error.retryable || error.code === "offset_mismatch" || error.code === "busy" || error.kind === "offline" || error.code === "interrupted";
        failures += 1;
        if (!resumable || failures > MAX_FAILURES) throw error;
        await this.sleep(Math.min(10_000, 500 * 2 ** Math.min(failures, 5)), this.signal);
        await this.resume();
      }
    }
    if (!this.accountId) await this.resume(); // the last PATCH's answer was lost: ask
    return this.accountId;
  }

  async patch() {
    const slice = this.file.slice(this.offset, Math.min(this.file.size, this.offset + this.chunkBytes));
    const answer = await this.api.request("PATCH", this.location, {
      headers: { ...TUS, "Upload-Offset": String(this.offset), "Content-Type": "application/offset+octet-stream" },
      raw: slice,
      full: true,
      retries: 0,
      idempotent: false,
      timeoutMs: 300_000,
      signal: this.signal,
      quiet: true,
    });
    this.offset = Number(answer.headers.get("Upload-Offset"));
    this.accountId = answer.headers.get("Mailchat-Account-Id") || this.accountId;
    this.report();
  }

  /** Where the server is: HEAD's Upload-Offset (and the account once complete). */
  async resume() {
    const answer = await this.api.request("HEAD", this.location, { headers: TUS, full: true, retries: 5, signal: this.signal, quiet: true });
    this.offset = Number(answer.headers.get("Upload-Offset"));
    this.accountId = answer.headers.get("Mailchat-Account-Id") || this.accountId;
    this.resumes += 1;
    this.report();
  }

  report() {
    const seconds = Math.max(0.001, (this.now() - this.started) / 1000);
    const rate = (this.offset - this.startOffset) / seconds;
    const left = this.file.size - this.offset;
    this.onProgress({ sent: this.offset, total: this.file.size, rate, etaSeconds: rate > 0 ? left / rate : null, resumes: this.resumes });
  }

  /** tus termination: forget an unfinished upload on the server (best effort). */
  async cancel() {
    if (!this.location || this.accountId) return;
    try {
      await this.api.request("DELETE", this.location, { headers: TUS, retries: 0, quiet: true });
    } catch {
      // the server drops stale unfinished uploads by itself
    }
  }
}
