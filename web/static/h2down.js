// Downloads and both over HTTP/2 (docs/HTTP2.md, "The browser";
// docs/BROWSER.md, "Downloads"). A browser reads a response only once its
// request body has ended, so the download's body is the hello alone:
// POST <target>?acks=post. The answer names its ack stream
// (Bp-Ack-Stream), and the page opens it: POST <target>/acks?download=ID,
// a streaming body (duplex 'half') that carries the page's acks of what it
// read, in a both run also the page's payload and fin, and ends when the
// run does. The page reads the response (the server's payload, its fin,
// in a both run its acks) at its own pace (a stop, a rate), so a page
// that stops reading closes the stream's window and the server's writes
// block: the server's metrics and log are the reference.

import { helloLine, ackFrame, dataFrame, controlFrame, StreamParser } from "./h2wire.js";

const ACK_MS = 100; // acks while the count moves, as the server's readers send them
const ACK_BYTES = 1 << 20; // and once a MiB more was read than the last ack said
const MAX_QUEUED_ACKS = 16; // acks the ack stream may hold untaken; newer ones replace them

// downloadConns are the download's and the both run's connection classes,
// on app.js's Conn and H2Conn (passed in, as app.js imports this module:
// a class cannot extend a binding of a module still being evaluated).
export function downloadConns(Conn, H2Conn, httpProtocol) {
  // H2DownConn: sent and acked, the figures the page shows, are what it
  // read and what it acknowledged to the server (mirror).
  class H2DownConn extends Conn {
    constructor(run, index) {
      super(run, index);
      this.readBytes = 0; // payload the page read
      this.readAcked = 0; // what its last ack said
      this.readMessages = 0;
      this.serverBytes = -1; // the server's fin: what it wrote
      this.pausedMs = 0; // the page's own stop of reading, done
      this.pausingSince = null;
      this.paused = false; // the page's stop came
      this.lastAckAt = 0;
    }

    get direction() { return "down"; }
    get buffered() { return 0; }
    pump() {}
    readPausedNow(now) { return this.pausedMs + (this.pausingSince === null ? 0 : now - this.pausingSince); }
    waitedNow(now) { return this.readPausedNow(now); }
    heldNow() { return false; }
    // pressure: how long the page has stopped reading now, in ms.
    pressure(now) { return this.pausingSince === null ? 0 : now - this.pausingSince; }
    stallsNow() { return 0; }
    mirror() {
      this.sent = this.readBytes;
      this.acked = this.readAcked;
      this.messages = this.readMessages;
    }

    open() {
      this.abortCtl = new AbortController();
      this.ackDone = false;
      this.downDone = false;
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
      const hello = helloLine({ run_id: this.run.runId, direction: this.direction, payload_size: s.payloadSize, total_bytes: s.totalBytes, rate: s.rate });
      const down = await fetch(this.downloadURL, {
        method: "POST", body: hello, cache: "no-store", signal, headers: { "Content-Type": "application/octet-stream" },
      });
      if (!down.ok) throw new Error(`the download was refused: HTTP ${down.status}: ${(await down.text()).trim()}`);
      const id = down.headers.get("Bp-Ack-Stream");
      if (!id) throw new Error(`${this.downloadURL} named no ack stream (no Bp-Ack-Stream header): is it bp-server?`);
      const body = new ReadableStream(this.siblingSource(), { highWaterMark: 0 });
      this.ackURL = `${s.target.replace(/\/?$/, "/acks")}?download=${encodeURIComponent(id)}`;
      this.ackAnswer = fetch(this.ackURL, {
        method: "POST", body, duplex: "half", cache: "no-store", signal, headers: { "Content-Type": "application/octet-stream" },
      }).then(async (r) => {
        const text = await r.text();
        if (!r.ok) throw new Error(`the ack stream was refused: HTTP ${r.status}: ${text.trim()}`);
      });
      this.ackAnswer.catch((err) => { if (!this.ended) this.fail(err.name === "TypeError" ? `the ack stream failed: ${err.message}` : err.message); });
      this.state = "sending";
      this.startedAt = this.lastProgressAt = this.lastAckAt = this.nextAt = performance.now();
      this.ackTimer = setInterval(() => this.ack(false), ACK_MS);
      this.run.update();
      await this.read(down.body.getReader());
    }

    // siblingSource is the ack stream body's source: the page enqueues
    // its acks as it reads.
    siblingSource() { return { start: (c) => { this.sibling = c; } }; }

    // read takes the response at the page's pace until its end.
    async read(reader) {
      const parser = new StreamParser();
      for (;;) {
        await this.pace();
        if (this.ended) return;
        const { value, done } = await reader.read();
        if (done) break;
        for (const ev of parser.push(value)) this.onEvent(ev);
        this.mirror();
        if (this.ended) return;
      }
      if (this.serverBytes < 0) throw new Error(`the download ended after ${this.readBytes} bytes, before the server's fin`);
      if (!this.ackDone) throw new Error("the download ended before the run did");
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
        this.readBytes += ev.data;
        if (ev.frameEnd) this.readMessages++;
        this.ack(false);
        return;
      }
      const msg = ev.control;
      if (!Number.isFinite(msg.bytes)) return;
      if (msg.type === "ack") this.onServerAck(msg.bytes);
      if (msg.type !== "fin") return;
      if (msg.bytes !== this.readBytes) throw new Error(`protocol error: the server's fin says ${msg.bytes} bytes, the page read ${this.readBytes}`);
      this.serverBytes = msg.bytes;
      this.ack(true);
      this.downDone = true;
      this.maybeEnd();
    }

    onServerAck() {} // a download gets none

    // maybeEnd ends the ack stream once the run is done: the server's
    // session then sees the page close.
    maybeEnd() {
      if (!this.downDone || this.ackDone) return;
      this.state = "finishing";
      this.sibling.close();
      this.ackDone = true;
    }

    // ack sends the count read when it moved, every ACK_MS or ACK_BYTES;
    // the final one always. A queue the browser has not taken is not
    // added to: acks are cumulative, the next one says it all.
    ack(final) {
      if (this.ackDone || !this.sibling) return;
      const now = performance.now();
      const moved = this.readBytes > this.readAcked;
      if (!final && (!moved || (now - this.lastAckAt < ACK_MS && this.readBytes - this.readAcked < ACK_BYTES))) return;
      if (!final && this.sibling.desiredSize < -MAX_QUEUED_ACKS) return;
      this.sibling.enqueue(ackFrame(this.readBytes));
      this.readAcked = this.readBytes;
      this.lastAckAt = now;
      this.mirror();
    }

    // pace waits for the page's stop of reading (once, after
    // readPauseAfterMs) and its read rate, before the next read.
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
        const due = this.startedAt + this.pausedMs + (1000 * this.readBytes) / s.readRate;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
      }
    }

    // sample: the read rate, acks and what was read, not yet
    // acknowledged; a download's page sees no "server stopped reading".
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
  }

  // H2BothConn: the download above, and an upload on its ack stream: the
  // page's payload goes there a chunk per pull as in H2Conn, then its
  // fin; the server's acks of it come in the response. sent and acked are
  // the upload's; the download's figures are the read* ones.
  class H2BothConn extends H2DownConn {
    constructor(run, index) {
      super(run, index);
      this.upDone = false;
    }

    get direction() { return "both"; }
    mirror() {}
    waitedNow(now) { return Conn.prototype.waitedNow.call(this, now); }
    heldNow(now) { return H2Conn.prototype.heldNow.call(this, now); }
    pressure(now) { return H2Conn.prototype.pressure.call(this, now); }
    stallsNow(now) { return Conn.prototype.stallsNow.call(this, now); }
    sample(now) { return Conn.prototype.sample.call(this, now); }
    siblingSource() { return { start: (c) => { this.sibling = c; }, pull: (c) => this.onPull(c) }; }

    // onPull hands the browser the page's next chunk: a data frame (at
    // the rate asked), then the fin; after it, only acks.
    async onPull() {
      const now = performance.now();
      if (this.waitingSince !== null) this.endWait(now); // the last chunk was taken
      if (this.state !== "sending" || this.finBytes >= 0) return;
      const s = this.run.settings;
      if (this.stopRequested || (s.totalBytes > 0 && this.sent >= s.totalBytes)) {
        this.finBytes = this.sent;
        this.handChunk(controlFrame({ type: "fin", bytes: this.finBytes }));
        this.lingerTimer = setTimeout(() => {
          this.fail(`the server acknowledged ${this.acked} of ${this.finBytes} bytes within ${s.lingerMs / 1000} s of the fin`);
        }, s.lingerMs);
        return;
      }
      await H2Conn.prototype.pace.call(this, now);
      if (this.state !== "sending" || this.ackDone) return;
      let n = s.payloadSize;
      if (s.totalBytes > 0) n = Math.min(n, s.totalBytes - this.sent);
      if (this.sent === this.acked) this.lastProgressAt = performance.now(); // the pipe was empty until now
      this.handChunk(n === s.payloadSize ? (this.fullFrame ??= dataFrame(this.run.payload)) : dataFrame(this.run.payload.subarray(0, n)));
      this.sent += n;
      this.messages++;
    }

    handChunk(chunk) {
      this.sibling.enqueue(chunk);
      this.waitingSince = performance.now();
    }

    onServerAck(bytes) {
      if (bytes > this.sent) throw new Error(`protocol error: the server acknowledged ${bytes} bytes, only ${this.sent} sent`);
      if (bytes > this.acked) {
        this.acked = bytes;
        this.lastProgressAt = performance.now();
      }
      if (this.finBytes >= 0 && bytes >= this.finBytes) {
        clearTimeout(this.lingerTimer);
        this.upDone = true;
        this.maybeEnd();
      }
    }

    maybeEnd() { if (this.upDone) super.maybeEnd(); }

    stop() { this.stopRequested = true; } // the fin goes at the next pull
  }

  return { H2DownConn, H2BothConn };
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }
