// A download over HTTP/2 (docs/HTTP2.md, "The browser"; docs/BROWSER.md,
// "Downloads"). A browser reads a response only once its request body has
// ended, so the download's body is the hello alone: POST <target>?acks=post.
// The answer names its ack stream (Bp-Ack-Stream), and the page opens it:
// POST <target>/acks?download=ID, a streaming body (duplex 'half') that
// carries the page's acks of what it read, and ends when the run does.
// The page reads the response at its own pace (a pause, a rate), so a
// page that stops reading closes the stream's window and the server's
// writes block: the server's metrics and log are the reference.

import { helloLine, ackFrame, StreamParser } from "./h2wire.js";

const ACK_MS = 100; // acks while the count moves, as the server's readers send them
const ACK_BYTES = 1 << 20; // and once a MiB more was read than the last ack said
const MAX_QUEUED_ACKS = 16; // acks the ack stream may hold untaken; newer ones replace them

// downloadConn is the download's connection class, a Conn of app.js's
// (passed in, as app.js imports this module: a class cannot extend a
// binding of a module still being evaluated).
export function downloadConn(Conn, httpProtocol) {
  return class H2DownConn extends Conn {
  constructor(run, index) {
    super(run, index);
    this.serverBytes = -1; // the server's fin: what it wrote
    this.pausedMs = 0; // the page's own pause of reading, done
    this.pausingSince = null;
    this.lastAckAt = 0;
    this.paused = false; // the page's pause came
  }

  get buffered() { return 0; }
  pump() {}
  waitedNow(now) { return this.pausedMs + (this.pausingSince === null ? 0 : now - this.pausingSince); }
  heldNow() { return false; }
  // pressure: how long the page has stopped reading now, in ms.
  pressure(now) { return this.pausingSince === null ? 0 : now - this.pausingSince; }
  stallsNow() { return 0; }

  open() {
    this.abortCtl = new AbortController();
    this.ackDone = false;
    this.openStreams().catch((err) => {
      if (!this.ended) this.fail(err.name === "TypeError" ? `fetch failed: ${err.message} (is the server's HTTP/2 reachable at ${this.run.settings.target}?)` : err.message);
    });
  }

  // openStreams posts the hello, opens the ack stream its answer names,
  // then reads the download to its end.
  async openStreams() {
    const s = this.run.settings;
    const signal = this.abortCtl.signal;
    this.downloadURL = `${s.target}?acks=post`;
    const hello = helloLine({ run_id: this.run.runId, direction: "down", payload_size: s.payloadSize, total_bytes: s.totalBytes, rate: s.rate });
    const down = await fetch(this.downloadURL, {
      method: "POST", body: hello, cache: "no-store", signal, headers: { "Content-Type": "application/octet-stream" },
    });
    if (!down.ok) throw new Error(`the download was refused: HTTP ${down.status}: ${(await down.text()).trim()}`);
    const id = down.headers.get("Bp-Ack-Stream");
    if (!id) throw new Error(`${this.downloadURL} named no ack stream (no Bp-Ack-Stream header): is it bp-server?`);
    const body = new ReadableStream({ start: (c) => { this.acks = c; } }, { highWaterMark: 0 });
    this.ackURL = `${s.target.replace(/\/?$/, "/acks")}?download=${encodeURIComponent(id)}`;
    this.ackAnswer = fetch(this.ackURL, {
      method: "POST", body, duplex: "half", cache: "no-store", signal, headers: { "Content-Type": "application/octet-stream" },
    }).then(async (r) => {
      const text = await r.text();
      if (!r.ok) throw new Error(`the ack stream was refused: HTTP ${r.status}: ${text.trim()}`);
    });
    this.ackAnswer.catch((err) => { if (!this.ended) this.fail(err.name === "TypeError" ? `the ack stream failed: ${err.message}` : err.message); });
    this.state = "sending";
    this.startedAt = this.lastProgressAt = this.lastAckAt = performance.now();
    this.ackTimer = setInterval(() => this.ack(false), ACK_MS);
    this.run.update();
    await this.read(down.body.getReader());
  }

  // read takes the response at the page's pace until the server's fin.
  async read(reader) {
    const parser = new StreamParser();
    for (;;) {
      await this.pace();
      if (this.ended) return;
      const { value, done } = await reader.read();
      if (done) break;
      for (const ev of parser.push(value)) this.onEvent(ev);
      if (this.ended) return;
    }
    if (this.serverBytes < 0) throw new Error(`the download ended after ${this.sent} bytes, before the server's fin`);
    await this.ackAnswer;
    this.protocol = httpProtocol(this.downloadURL);
    this.state = "done";
    this.endedAt = performance.now();
    this.cleanup();
    this.run.connEnded();
  }

  onEvent(ev) {
    if (ev.refused !== undefined) throw new Error(`the server refused the download: ${ev.refused}`);
    if (ev.data !== undefined) {
      if (this.serverBytes >= 0) throw new Error("protocol error: the server sent payload after its fin");
      this.sent += ev.data;
      if (ev.frameEnd) this.messages++;
      this.ack(false);
      return;
    }
    const msg = ev.control;
    if (msg.type !== "fin" || !Number.isFinite(msg.bytes)) return; // a down run gets no acks
    if (msg.bytes !== this.sent) throw new Error(`protocol error: the server's fin says ${msg.bytes} bytes, the page read ${this.sent}`);
    this.serverBytes = msg.bytes;
    this.state = "finishing";
    this.ack(true);
    this.acks.close(); // the run's end: the server's session sees the page close
    this.ackDone = true;
  }

  // ack sends the count read when it moved, every ACK_MS or ACK_BYTES; the
  // final one always. A queue the browser has not taken is not added to:
  // acks are cumulative, the next one says it all.
  ack(final) {
    if (this.ackDone || !this.acks) return;
    const now = performance.now();
    const moved = this.sent > this.acked;
    if (!final && (!moved || (now - this.lastAckAt < ACK_MS && this.sent - this.acked < ACK_BYTES))) return;
    if (!final && this.acks.desiredSize < -MAX_QUEUED_ACKS) return;
    this.acks.enqueue(ackFrame(this.sent));
    this.acked = this.sent;
    this.lastAckAt = this.lastProgressAt = now;
  }

  // pace waits for the page's pause (once, after pause_after) and its
  // read rate, before the next read.
  async pace() {
    const s = this.run.settings;
    const now = performance.now();
    if (s.readPauseMs > 0 && !this.paused && now - this.startedAt >= s.readPauseAfterMs) {
      this.paused = true;
      this.pausingSince = now;
      this.run.update();
      await sleep(s.readPauseMs);
      this.pausedMs += performance.now() - this.pausingSince;
      this.pausingSince = null;
    }
    if (s.readRate > 0) {
      const due = this.startedAt + this.pausedMs + (1000 * this.sent) / s.readRate;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
    }
  }

  // sample: the read rate, acks and what was read, not yet acknowledged;
  // a download's page sees no "server stopped reading".
  sample(now) {
    this.sampleRate(now);
    return { b: this.pressure(now), r: this.rate, a: this.acked, p: this.sent - this.acked };
  }

  stop() { this.abort(); }

  closeTransport() {
    this.protocol = httpProtocol(this.downloadURL);
    this.abortCtl.abort();
  }

  cleanup() {
    super.cleanup();
    clearInterval(this.ackTimer);
    if (this.pausingSince !== null) {
      this.pausedMs += performance.now() - this.pausingSince;
      this.pausingSince = null;
    }
  }
  };
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }
