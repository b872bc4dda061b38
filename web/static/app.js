// The browser client: sends payload to bp-server as docs/PROTOCOL.md says
// (hello, payload, fin, wait for the final ack) and shows what it sees.
// Over WebSocket (/ws) it paces itself on bufferedAmount; over HTTP/2
// (fetch, /h2) the browser pulls the request body as the stream drains,
// and the acks come on a sibling stream (docs/HTTP2.md, "The browser").
//
// State the tests (and curious users) can read without parsing text:
//   #run-state[data-state]            idle | connecting | running | finishing | done | stopped | failed
//   #stall[data-stalled][data-episodes]  the server stopped reading (now / how often this run)
//   #browser-held[data-held]          bufferedAmount is at the high-water mark now
//   #total-*[data-value]              live totals in bytes (rate: bytes/s, waited: ms)
//   #conns tr[data-conn]              one row per connection, data-state, data-sent, data-acked, ...
//   #summary[data-result] and data-*  the report at the end; window.bpReport holds it as an object

import { drawChart } from "./chart.js";
import { parseSize, formatBytes, formatDuration } from "./format.js";
import { helloLine, dataFrame, controlFrame, FrameParser } from "./h2wire.js";
import { downloadConns } from "./h2down.js";

const SAMPLE_MS = 100; // how often the live view samples every connection
const RATE_WINDOW = 5; // samples the send rate is averaged over (500 ms)
const POLL_MS = 5; // how often a waiting connection looks at bufferedAmount again
const TURN_BYTES = 8 << 20; // bytes one connection sends before yielding to the event loop
const MAX_PAYLOAD = 16 << 20; // docs/PROTOCOL.md: largest payload message
const COLORS = ["#2457c5", "#d46b08", "#389e0d", "#c41d7f", "#08979c", "#7cb305", "#531dab", "#d4380d"];
const TOTAL_COLOR = "#1d2330";

const $ = (id) => document.getElementById(id);

let run = null; // the current or last run

// TRANSPORTS are the page's two ways to the server: the endpoint next to
// the page's own path, and the scheme that follows the page's (so the page
// works behind TLS and path prefixes).
const TRANSPORTS = {
  ws: { endpoint: "ws", secure: "wss:", plain: "ws:", pattern: /^wss?:\/\/[^/]+/, why: "must start with ws:// or wss://" },
  // Browsers stream a request body only over HTTP/2, and speak HTTP/2
  // only over TLS: https:// or nothing.
  h2: { endpoint: "h2", secure: "https:", plain: "http:", pattern: /^https:\/\/[^/]+/,
    why: "must start with https://: a browser streams a request body only over HTTP/2, which it speaks only over TLS" },
};

// defaultTarget is the transport's endpoint next to this page.
function defaultTarget(transport) {
  const t = TRANSPORTS[transport];
  const scheme = location.protocol === "https:" ? t.secure : t.plain;
  let path = location.pathname.replace(/client\/?$/, t.endpoint);
  if (!path.endsWith("/" + t.endpoint)) path = "/" + t.endpoint;
  return `${scheme}//${location.host}${path}`;
}

// A change of transport moves a target left at its default to the new one,
// and names what the page waits on.
function onTransportChange() {
  const transport = $("transport").value;
  const target = $("target");
  const defaults = Object.keys(TRANSPORTS).map(defaultTarget);
  if (target.value === "" || defaults.includes(target.value)) target.value = defaultTarget(transport);
  directionLabels(false); // the transport's labels go under the upload's
  const h2 = transport === "h2";
  $("label-waited").textContent = h2 ? "Waited for the browser's pull" : "Waited on bufferedAmount";
  $("label-buffered").textContent = h2 ? "bufferedAmount (none over fetch)" : "bufferedAmount";
  $("th-buffered").textContent = h2 ? "bufferedAmount (n/a)" : "bufferedAmount";
  $("rate-hint").textContent = h2 ? "0 = as fast as the browser takes the chunks" : "0 = as fast as bufferedAmount allows";
  $("caption-buffered").innerHTML = h2 ? "Chunk waiting for the browser's pull <span class=\"dim\">(dashed: stall threshold)</span>"
    : "bufferedAmount <span class=\"dim\">(dashed: high-water mark)</span>";
  applyDirection();
}

// DOWN_LABELS name what a download shows where an upload's figures stand:
// the page reads, acknowledges to the server, and stops reading on
// purpose. An upload's labels are the elements' own (kept in data-up).
const DOWN_LABELS = {
  "label-sent": "Read (taken from the response)",
  "label-acked": "Acknowledged to the server",
  "label-in-pipe": "Read, not yet acknowledged",
  "label-rate": "Read rate",
  "label-waited": "Stopped reading (on purpose)",
  "th-sent": "read",
  "th-in-pipe": "not yet acked",
  "caption-buffered": "Stopped reading <span class=\"dim\">(ms into the page's stop)</span>",
  "caption-rate": "Read rate <span class=\"dim\">(bytes taken from the response per second)</span>",
  "caption-acked": "Acknowledged to the server <span class=\"dim\">(cumulative)</span>",
  "caption-in-pipe": "Read, not yet acknowledged <span class=\"dim\">(acks go every 100 ms and every MiB)</span>",
};

// directionLabels puts the upload's labels back, then shows a download's
// when down.
function directionLabels(down) {
  for (const [id, text] of Object.entries(DOWN_LABELS)) {
    const el = $(id);
    if (el.dataset.up !== undefined) el.innerHTML = el.dataset.up;
    delete el.dataset.up;
    if (down) {
      el.dataset.up = el.innerHTML;
      el.innerHTML = text;
    }
  }
}

function applyDirection() { directionLabels($("direction").value === "down"); }

// Query parameters prefill the form, so a run can be shared as a link.
function prefill() {
  const q = new URLSearchParams(location.search);
  if (TRANSPORTS[q.get("transport")]) $("transport").value = q.get("transport");
  if (["up", "down", "both"].includes(q.get("direction"))) $("direction").value = q.get("direction");
  $("target").value = q.get("target") || defaultTarget($("transport").value);
  const fields = {
    payload: "payload-size", rate: "rate", total: "total", unit: "total-unit",
    connections: "connections", high_water: "high-water", stall_ms: "stall-threshold",
    stopped_ms: "stopped-after", linger_s: "linger",
    read_pause_after_ms: "read-pause-after", read_pause_ms: "read-pause", read_rate: "read-rate",
  };
  for (const [param, id] of Object.entries(fields)) {
    if (q.has(param)) $(id).value = q.get(param);
  }
}

// readSettings validates the form; an error names the field and the value.
function readSettings() {
  const bad = (label, value, why) => new Error(`${label}: "${value}" ${why}`);
  const transport = $("transport").value;
  const target = $("target").value.trim();
  if (!TRANSPORTS[transport].pattern.test(target)) throw bad("Server URL", target, TRANSPORTS[transport].why);
  const payloadSize = parseSize($("payload-size").value);
  if (!(payloadSize >= 1 && payloadSize <= MAX_PAYLOAD)) throw bad("Payload size", $("payload-size").value, "must be between 1 B and 16 MiB");
  const rate = Number($("rate").value);
  if (!(rate >= 0) || !Number.isFinite(rate)) throw bad("Rate", $("rate").value, "must be a number of messages per second, 0 or more");
  const unit = $("total-unit").value;
  let totalBytes;
  if (unit === "messages") {
    const n = Number($("total").value);
    if (!Number.isInteger(n) || n < 0) throw bad("Total", $("total").value, "must be a whole number of messages, 0 or more");
    totalBytes = n * payloadSize;
  } else {
    totalBytes = parseSize($("total").value);
    if (!(totalBytes >= 0)) throw bad("Total", $("total").value, "must be a size in bytes, 0 or more");
  }
  if (totalBytes > Number.MAX_SAFE_INTEGER) throw bad("Total", $("total").value, "is too large");
  const connections = Number($("connections").value);
  if (!Number.isInteger(connections) || connections < 1 || connections > 64) throw bad("Connections", $("connections").value, "must be between 1 and 64");
  const highWater = parseSize($("high-water").value);
  if (!(highWater >= 1)) throw bad("High-water mark", $("high-water").value, "must be a size of at least 1 B");
  const stallMs = Number($("stall-threshold").value);
  if (!(stallMs >= 1)) throw bad("Stall threshold", $("stall-threshold").value, "must be at least 1 ms");
  const stoppedMs = Number($("stopped-after").value);
  if (!(stoppedMs >= 100)) throw bad("Server stopped reading after", $("stopped-after").value, "must be at least 100 ms");
  const lingerS = Number($("linger").value);
  if (!(lingerS >= 1)) throw bad("Wait for the final ack", $("linger").value, "must be at least 1 s");
  const direction = $("direction").value;
  // WebSocket downloads are not built: the page's downloads are HTTP/2's.
  if (direction !== "up" && transport !== "h2") throw bad("Direction", direction, "runs over HTTP/2 (fetch) only");
  const readPauseAfterMs = Number($("read-pause-after").value);
  const readPauseMs = Number($("read-pause").value);
  if (!(readPauseAfterMs >= 0) || !(readPauseMs >= 0)) throw bad("Read pause", `${$("read-pause-after").value}, ${$("read-pause").value}`, "must be milliseconds, 0 or more");
  const readRate = parseSize($("read-rate").value);
  if (!(readRate >= 0)) throw bad("Read rate", $("read-rate").value, "must be a size per second, 0 or more");
  return { transport, target, direction, payloadSize, rate, totalBytes, connections, highWater, stallMs, stoppedMs, lingerMs: lingerS * 1000,
    readPauseAfterMs, readPauseMs, readRate };
}

function newRunId() {
  const b = new Uint8Array(4);
  crypto.getRandomValues(b);
  return "web-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// makePayload fills one message the way bp-server fills its own.
function makePayload(size) {
  const pattern = new TextEncoder().encode("backpressure ");
  const p = new Uint8Array(size);
  for (let i = 0; i < size; i += pattern.length) p.set(pattern.subarray(0, Math.min(pattern.length, size - i)), i);
  return p;
}

// Conn is one WebSocket connection of a run; H2Conn below is the same run
// over HTTP/2.
class Conn {
  constructor(run, index) {
    this.run = run;
    this.index = index;
    this.state = "connecting";
    this.sent = 0; // bytes handed to send()
    this.messages = 0;
    this.acked = 0; // bytes the server acknowledged having read
    this.finBytes = -1;
    this.lastProgressAt = 0; // last ack progress, or when the pipe last became non-empty
    this.waitingSince = null; // waiting for bufferedAmount to drop below the high-water mark
    this.waitedMs = 0;
    this.stalls = 0;
    this.longestWaitMs = 0;
    this.serverStopped = false;
    this.stoppedSince = 0;
    this.stopEpisodes = 0;
    this.longestStopMs = 0;
    this.peakInPipe = 0;
    this.peakBuffered = 0;
    this.stopRequested = false;
    this.error = "";
    this.timer = null;
    this.lingerTimer = null;
    this.nextAt = 0;
    this.rateHistory = [];
    this.rate = 0;
  }

  get active() { return this.state === "sending" || this.state === "finishing"; }
  get ended() { return this.state === "done" || this.state === "failed" || this.state === "stopped"; }
  get buffered() { return this.active && this.ws ? this.ws.bufferedAmount : 0; }
  waitedNow(now) { return this.waitedMs + (this.waitingSince === null ? 0 : now - this.waitingSince); }
  // heldNow: the page waits on the browser right now (bufferedAmount at
  // the high-water mark).
  heldNow() { return this.waitingSince !== null; }
  // pressure is what the first chart draws: bufferedAmount.
  pressure() { return this.buffered; }
  // stallsNow counts a wait in progress as soon as it is long enough.
  stallsNow(now) {
    const long = this.waitingSince !== null && now - this.waitingSince >= this.run.settings.stallMs;
    return this.stalls + (long ? 1 : 0);
  }

  open() {
    const s = this.run.settings;
    try {
      this.ws = new WebSocket(s.target);
    } catch (err) {
      this.fail(`cannot open ${s.target}: ${err.message}`);
      return;
    }
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => {
      if (this.state !== "connecting") return;
      this.ws.send(JSON.stringify({
        type: "hello", version: 1, run_id: this.run.runId, direction: "up",
        payload_size: s.payloadSize, total_bytes: s.totalBytes, rate: s.rate,
      }));
      this.state = "sending";
      this.lastProgressAt = this.nextAt = performance.now();
      this.pump();
    };
    this.ws.onmessage = (ev) => this.onMessage(ev);
    this.ws.onclose = (ev) => this.onClose(ev);
  }

  schedule(ms) {
    if (this.timer === null) this.timer = setTimeout(() => { this.timer = null; this.pump(); }, ms);
  }

  // pump sends while bufferedAmount is below the high-water mark (and the
  // rate allows), then yields; when held back it looks again in POLL_MS.
  pump() {
    if (this.state !== "sending") return;
    const s = this.run.settings;
    const interval = s.rate > 0 ? 1000 / s.rate : 0;
    let budget = TURN_BYTES;
    for (;;) {
      const now = performance.now();
      if (this.stopRequested || (s.totalBytes > 0 && this.sent >= s.totalBytes)) {
        this.finish(now);
        return;
      }
      if (this.ws.bufferedAmount >= s.highWater) {
        if (this.waitingSince === null) this.waitingSince = now;
        this.schedule(POLL_MS);
        return;
      }
      if (this.waitingSince !== null) this.endWait(now);
      if (interval > 0) {
        if (now < this.nextAt) {
          this.schedule(this.nextAt - now);
          return;
        }
        // Late timers may catch up by one message, never by a burst.
        this.nextAt = Math.max(this.nextAt, now - interval) + interval;
      }
      let n = s.payloadSize;
      if (s.totalBytes > 0) n = Math.min(n, s.totalBytes - this.sent);
      if (this.sent === this.acked) this.lastProgressAt = now; // the pipe was empty until now
      this.ws.send(n === this.run.payload.length ? this.run.payload : this.run.payload.subarray(0, n));
      this.sent += n;
      this.messages++;
      budget -= n;
      if (budget <= 0) {
        this.schedule(0);
        return;
      }
    }
  }

  endWait(now) {
    const d = now - this.waitingSince;
    this.waitingSince = null;
    this.waitedMs += d;
    if (d >= this.run.settings.stallMs) this.stalls++;
    if (d > this.longestWaitMs) this.longestWaitMs = d;
  }

  // finish sends the fin with the bytes sent and waits for the final ack.
  finish(now) {
    if (this.waitingSince !== null) this.endWait(now);
    this.state = "finishing";
    this.finBytes = this.sent;
    this.sendFin();
    this.lingerTimer = setTimeout(() => {
      this.fail(`the server acknowledged ${this.acked} of ${this.finBytes} bytes within ${this.run.settings.lingerMs / 1000} s of the fin`);
    }, this.run.settings.lingerMs);
    this.run.update();
  }

  sendFin() { this.ws.send(JSON.stringify({ type: "fin", bytes: this.finBytes })); }

  onMessage(ev) {
    if (typeof ev.data !== "string") return; // an up run gets no payload
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      this.fail(`the server sent a control message that is not JSON: ${ev.data.slice(0, 80)}`);
      return;
    }
    this.onControl(msg);
  }

  // onControl takes one of the server's control messages: acks move
  // acked, the final one ends the run.
  onControl(msg) {
    if (this.ended || msg.type !== "ack" || !Number.isFinite(msg.bytes)) return;
    if (msg.bytes > this.sent) {
      this.fail(`protocol error: the server acknowledged ${msg.bytes} bytes, only ${this.sent} sent`);
      return;
    }
    const now = performance.now();
    if (msg.bytes > this.acked) {
      this.acked = msg.bytes;
      this.lastProgressAt = now;
    }
    if (this.state === "finishing" && msg.bytes >= this.finBytes) this.finalAck(now);
  }

  // finalAck: the server read every byte; the client closes.
  finalAck(now) {
    this.state = "done";
    this.endedAt = now;
    clearTimeout(this.lingerTimer);
    this.ws.close(1000, "done");
    this.run.connEnded();
  }

  onClose(ev) {
    this.closeCode = ev.code;
    if (this.ended) return;
    const why = ev.reason ? `: ${ev.reason}` : "";
    if (this.state === "connecting") this.fail(`could not connect to ${this.run.settings.target} (close code ${ev.code}${why})`);
    else this.fail(`the connection was closed before the run ended (close code ${ev.code}${why})`);
  }

  fail(message) {
    if (this.ended) return;
    const now = performance.now();
    if (this.waitingSince !== null) this.endWait(now);
    this.state = "failed";
    this.error = message;
    this.endedAt = now;
    this.cleanup();
    this.closeTransport("failed");
    this.run.connEnded();
  }

  // stop ends sending: the fin goes out with what was sent so far.
  stop() {
    this.stopRequested = true;
    if (this.state === "sending") {
      clearTimeout(this.timer);
      this.timer = null;
      this.pump();
    } else if (this.state === "connecting") {
      this.abort();
    }
  }

  // abort closes at once, without waiting for the final ack.
  abort() {
    if (this.ended) return;
    const now = performance.now();
    if (this.waitingSince !== null) this.endWait(now);
    this.state = "stopped";
    this.endedAt = now;
    this.cleanup();
    this.closeTransport("stopped");
    this.run.connEnded();
  }

  closeTransport(reason) {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, reason);
  }

  cleanup() {
    clearTimeout(this.timer);
    clearTimeout(this.lingerTimer);
    this.timer = this.lingerTimer = null;
  }

  // sampleRate updates the rate of sent over the last RATE_WINDOW samples.
  sampleRate(now) {
    this.rateHistory.push([now, this.sent]);
    if (this.rateHistory.length > RATE_WINDOW + 1) this.rateHistory.shift();
    const [t0, s0] = this.rateHistory[0];
    this.rate = now > t0 ? ((this.sent - s0) * 1000) / (now - t0) : 0;
    if (!this.active) this.rate = 0;
  }

  // sample updates the derived figures; the run calls it every SAMPLE_MS.
  sample(now) {
    const buffered = this.buffered;
    const inPipe = this.sent - this.acked;
    this.sampleRate(now);
    this.peakInPipe = Math.max(this.peakInPipe, inPipe);
    this.peakBuffered = Math.max(this.peakBuffered, buffered);
    // The server stopped reading: bytes are in the pipe and no ack has
    // moved for the set time. An episode ends with the next ack progress.
    const silent = this.active && inPipe > 0 && now - this.lastProgressAt >= this.run.settings.stoppedMs;
    if (silent && !this.serverStopped) {
      this.serverStopped = true;
      this.stoppedSince = this.lastProgressAt;
      this.stopEpisodes++;
    } else if (!silent && this.serverStopped) {
      this.serverStopped = false;
      const end = this.lastProgressAt > this.stoppedSince ? this.lastProgressAt : now;
      this.longestStopMs = Math.max(this.longestStopMs, end - this.stoppedSince);
    }
    if (this.serverStopped) this.longestStopMs = Math.max(this.longestStopMs, now - this.stoppedSince);
    return { b: this.pressure(now), r: this.rate, a: this.acked, p: inPipe };
  }
}

// H2Conn is one upload over HTTP/2, as bp-client's https:// runs send it:
// a fetch() POST whose body is a stream the page fills each time the
// browser asks for more (pull). A browser streams a request body half
// duplex only (the response is readable once the body ended), so the acks
// come on a sibling stream of the same connection: a GET of <target>/acks,
// whose answer names it (Bp-Ack-Stream) and then streams control frames;
// the upload names it in its URL (?acks=ID). The browser's backpressure a
// page can see is how long each chunk waits for the next pull: the page
// hands over one chunk at a time (highWaterMark 0), and the browser takes
// the next only once its upload buffer has room, which it has only while
// the HTTP/2 stream's window is open.
class H2Conn extends Conn {
  get buffered() { return 0; } // fetch has no bufferedAmount
  pump() {} // the browser's pulls drive the sending: Stop's fin goes at the next
  // heldNow: the browser has not taken the last chunk for a stall's time.
  heldNow(now) { return this.waitingSince !== null && now - this.waitingSince >= this.run.settings.stallMs; }
  // pressure: how long the chunk handed last has waited for the next pull, in ms.
  pressure(now) { return this.waitingSince === null ? 0 : now - this.waitingSince; }

  open() {
    this.abortCtl = new AbortController();
    this.finalAcked = false;
    this.uploadDone = false;
    this.finalAckSeen = new Promise((resolve) => { this.resolveFinalAck = resolve; });
    this.openStreams().catch((err) => {
      if (!this.ended) this.fail(err.name === "TypeError" ? `fetch failed: ${err.message} (is the server's HTTP/2 reachable at ${this.run.settings.target}?)` : err.message);
    });
  }

  // openStreams opens the ack stream, then the upload naming it, and
  // waits for the upload's response.
  async openStreams() {
    const s = this.run.settings;
    const signal = this.abortCtl.signal;
    const ackURL = s.target.replace(/\/?$/, "/acks");
    const acks = await fetch(ackURL, { cache: "no-store", signal });
    if (!acks.ok) throw new Error(`the ack stream ${ackURL} was refused: HTTP ${acks.status}: ${(await acks.text()).trim()}`);
    const id = acks.headers.get("Bp-Ack-Stream");
    if (!id) throw new Error(`${ackURL} named no ack stream (no Bp-Ack-Stream header): is it bp-server?`);
    this.readAcks(acks.body.getReader());
    this.uploadURL = `${s.target}?acks=${encodeURIComponent(id)}`;
    const body = new ReadableStream({ pull: (c) => this.onPull(c) }, { highWaterMark: 0 });
    const up = await fetch(this.uploadURL, {
      method: "POST", body, duplex: "half", cache: "no-store", signal,
      headers: { "Content-Type": "application/octet-stream" },
    });
    const text = await up.text();
    if (!up.ok) throw new Error(`the upload was refused: HTTP ${up.status}: ${text.trim()}`);
    this.uploadDone = true;
    this.maybeDone();
  }

  // onPull hands the browser the next chunk: the hello line, a data frame
  // (at the rate asked), the fin, and the body's end after the final ack.
  async onPull(controller) {
    const now = performance.now();
    if (this.waitingSince !== null) this.endWait(now); // the last chunk was taken
    this.controller = controller;
    if (this.state === "connecting") {
      const s = this.run.settings;
      this.hand(helloLine({ run_id: this.run.runId, direction: "up", payload_size: s.payloadSize, total_bytes: s.totalBytes, rate: s.rate }));
      this.state = "sending";
      this.lastProgressAt = this.nextAt = now;
      this.run.update();
      return;
    }
    if (this.state === "finishing") {
      await this.finalAckSeen;
      if (this.finalAcked) controller.close();
      return;
    }
    if (this.state !== "sending") return; // ended: the abort ends the stream
    const s = this.run.settings;
    if (this.stopRequested || (s.totalBytes > 0 && this.sent >= s.totalBytes)) {
      this.finish(now);
      return;
    }
    await this.pace(now);
    if (this.state !== "sending") return;
    let n = s.payloadSize;
    if (s.totalBytes > 0) n = Math.min(n, s.totalBytes - this.sent);
    const t = performance.now();
    if (this.sent === this.acked) this.lastProgressAt = t; // the pipe was empty until now
    if (n !== s.payloadSize || !this.fullFrame) {
      const f = dataFrame(this.run.payload.subarray(0, n));
      if (n === s.payloadSize) this.fullFrame = f; // the same bytes every time: one buffer
      this.hand(f);
    } else {
      this.hand(this.fullFrame);
    }
    this.sent += n;
    this.messages++;
  }

  // pace waits until the rate allows the next message.
  async pace(now) {
    const s = this.run.settings;
    if (!(s.rate > 0)) return;
    const interval = 1000 / s.rate;
    if (now < this.nextAt) await new Promise((r) => setTimeout(r, this.nextAt - now));
    // Late timers may catch up by one message, never by a burst.
    this.nextAt = Math.max(this.nextAt, performance.now() - interval) + interval;
  }

  // hand gives the browser one chunk; its wait for the next pull starts.
  hand(chunk) {
    this.controller.enqueue(chunk);
    this.waitingSince = performance.now();
  }

  sendFin() { this.hand(controlFrame({ type: "fin", bytes: this.finBytes })); }

  async readAcks(reader) {
    const parser = new FrameParser();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const msg of parser.push(value)) this.onControl(msg);
      }
    } catch (err) {
      if (!this.ended) this.fail(`the ack stream broke: ${err.message}`);
      return;
    }
    if (!this.ended && !this.finalAcked) this.fail(`the server ended the ack stream after ${this.acked} bytes acknowledged, before its final ack`);
  }

  // finalAck: the server read every byte; the body ends (at the pull
  // waiting for it) and the run is done with the upload's response.
  finalAck() {
    this.finalAcked = true;
    this.resolveFinalAck();
    this.maybeDone();
  }

  maybeDone() {
    if (this.ended || !this.finalAcked || !this.uploadDone) return;
    clearTimeout(this.lingerTimer); // it bounds the upload's answer too
    this.state = "done";
    this.endedAt = performance.now();
    this.protocol = httpProtocol(this.uploadURL);
    this.run.connEnded();
  }

  closeTransport() {
    this.protocol = httpProtocol(this.uploadURL);
    this.abortCtl.abort();
    this.resolveFinalAck();
  }
}

// httpProtocol is the protocol the browser used for url, from its own
// record (Resource Timing's nextHopProtocol: "h2", "http/1.1"); "" when it
// has none (yet).
function httpProtocol(url) {
  if (!url) return "";
  const e = performance.getEntriesByName(url).filter((x) => x.nextHopProtocol);
  return e.length ? e[e.length - 1].nextHopProtocol : "";
}

// H2DownConn is one download over HTTP/2, H2BothConn one both run (h2down.js).
const { H2DownConn, H2BothConn } = downloadConns(Conn, H2Conn, httpProtocol);

// Run is one press of Start: its connections, samples and report.
class Run {
  constructor(settings) {
    this.settings = settings;
    this.runId = newRunId();
    this.payload = makePayload(settings.payloadSize);
    this.startedAt = performance.now();
    this.endedAt = 0;
    this.samples = [];
    this.bands = []; // [t0, t1] in seconds while some connection's server stopped reading
    this.bandOpen = false;
    this.stopping = false;
    this.conns = [];
    const Kind = { down: H2DownConn, both: H2BothConn }[settings.direction] || (settings.transport === "h2" ? H2Conn : Conn);
    // The browser keeps 250 resource timings; each HTTP/2 run adds two a
    // connection, and its report reads them back (httpProtocol).
    if (settings.transport === "h2") performance.clearResourceTimings();
    for (let i = 0; i < settings.connections; i++) this.conns.push(new Kind(this, i));
  }

  start() {
    buildTable(this);
    buildLegend(this);
    for (const c of this.conns) c.open();
    this.sampler = setInterval(() => this.sample(), SAMPLE_MS);
    this.sample();
  }

  get ended() { return this.conns.every((c) => c.ended); }

  stop() {
    if (!this.stopping) {
      this.stopping = true;
      for (const c of this.conns) c.stop();
    } else {
      for (const c of this.conns) c.abort();
    }
    this.update();
  }

  connEnded() {
    this.update();
    if (this.ended && !this.endedAt) {
      this.endedAt = performance.now();
      clearInterval(this.sampler);
      this.sample();
      showReport(this);
      setIdleControls();
    }
  }

  sample() {
    const now = this.endedAt || performance.now();
    const t = (now - this.startedAt) / 1000;
    const per = this.conns.map((c) => c.sample(now));
    const tot = { b: 0, r: 0, a: 0, p: 0 };
    for (const p of per) { tot.b += p.b; tot.r += p.r; tot.a += p.a; tot.p += p.p; }
    this.samples.push({ t, per, tot });
    const stopped = this.conns.filter((c) => c.serverStopped);
    if (stopped.length > 0) {
      if (!this.bandOpen) {
        const since = Math.min(...stopped.map((c) => c.stoppedSince));
        this.bands.push([(since - this.startedAt) / 1000, t]);
        this.bandOpen = true;
      }
      this.bands[this.bands.length - 1][1] = t;
    } else {
      this.bandOpen = false;
    }
    this.update();
    draw(this);
  }

  totals(now) {
    const sum = (f) => this.conns.reduce((a, c) => a + f(c), 0);
    return {
      sent: sum((c) => c.sent), acked: sum((c) => c.acked), messages: sum((c) => c.messages),
      buffered: sum((c) => c.buffered), rate: sum((c) => c.rate), waitedMs: sum((c) => c.waitedNow(now)),
      stalls: sum((c) => c.stallsNow(now)), episodes: sum((c) => c.stopEpisodes),
    };
  }

  state() {
    if (this.ended) {
      if (this.conns.some((c) => c.state === "failed")) return "failed";
      if (this.conns.some((c) => c.state === "stopped")) return "stopped";
      return "done";
    }
    if (this.conns.some((c) => c.state === "sending")) return "running";
    if (this.conns.every((c) => c.state === "connecting")) return "connecting";
    return "finishing";
  }

  update() { render(this); }
}

// ---- rendering ----

function setValue(id, value, text) {
  const el = $(id);
  el.dataset.value = String(Math.round(value));
  el.textContent = text;
}

const STATE_TEXT = {
  connecting: "Connecting…",
  running: "Running: sending payload.",
  finishing: "Finishing: fin sent, waiting for the server's final ack.",
  done: "Done: every byte sent was acknowledged by the server.",
  stopped: "Stopped: closed before the server acknowledged everything.",
  failed: "Failed.",
};

// DOWN_TEXT is what differs for a download: the page reads, the server writes.
const DOWN_TEXT = {
  running: "Running: reading the server's payload.",
  finishing: "Finishing: the server's fin read, the final ack sent.",
  done: "Done: every byte the server wrote was read and acknowledged.",
};

function render(r) {
  const now = r.endedAt || performance.now();
  const st = r.state();
  const rs = $("run-state");
  rs.dataset.state = st;
  const down = r.settings.direction === "down";
  let text = (down && DOWN_TEXT[st]) || STATE_TEXT[st];
  if (st === "failed") text = "Failed: " + r.conns.find((c) => c.state === "failed").error;
  if (st === "running" && r.stopping) text = "Stopping: fin sent with the bytes sent so far.";
  rs.textContent = text;

  const t = r.totals(now);
  setValue("total-sent", t.sent, formatBytes(t.sent));
  setValue("total-acked", t.acked, formatBytes(t.acked));
  setValue("total-in-pipe", t.sent - t.acked, formatBytes(t.sent - t.acked));
  setValue("total-buffered", t.buffered, formatBytes(t.buffered));
  setValue("total-rate", t.rate, formatBytes(t.rate) + "/s");
  setValue("total-waited", t.waitedMs, formatDuration(t.waitedMs));
  setValue("total-stalls", t.stalls, String(t.stalls));
  setValue("elapsed", now - r.startedAt, formatDuration(now - r.startedAt));

  const stopped = r.conns.filter((c) => c.serverStopped);
  const stall = $("stall");
  stall.dataset.stalled = String(stopped.length > 0);
  stall.dataset.episodes = String(t.episodes);
  stall.hidden = stopped.length === 0;
  if (stopped.length > 0) {
    const silentMs = now - Math.min(...stopped.map((c) => c.stoppedSince));
    const pipe = stopped.reduce((a, c) => a + c.sent - c.acked, 0);
    stall.textContent = `Server stopped reading: no acknowledgement for ${formatDuration(silentMs)} on ` +
      `${stopped.length} of ${r.conns.length} connection(s), ${formatBytes(pipe)} in the pipe.`;
  }
  const held = r.conns.filter((c) => c.heldNow(now));
  const heldEl = $("browser-held");
  heldEl.dataset.held = String(held.length > 0);
  heldEl.hidden = held.length === 0;
  if (held.length > 0 && r.settings.transport === "h2") {
    const ms = now - Math.min(...held.map((c) => c.waitingSince));
    heldEl.textContent = `Backpressure reached the page: the browser has not taken the next chunk for ${formatDuration(ms)} on ` +
      `${held.length} stream(s); its upload waits for the HTTP/2 stream's window.`;
  } else if (held.length > 0) {
    heldEl.textContent = `Backpressure reached the page: bufferedAmount ≥ ${formatBytes(r.settings.highWater)} on ` +
      `${held.length} connection(s); sending waits.`;
  }

  for (const c of r.conns) {
    const row = c.row;
    if (!row) continue;
    const inPipe = c.sent - c.acked;
    Object.assign(row.dataset, {
      state: c.state, sent: c.sent, acked: c.acked, inPipe, buffered: c.buffered,
      stalled: String(c.serverStopped), stalls: c.stallsNow(now),
    });
    const cells = row.cells;
    cells[1].textContent = c.state === "failed" ? "failed: " + c.error : c.state;
    cells[1].title = c.error;
    cells[2].textContent = formatBytes(c.sent);
    cells[3].textContent = formatBytes(c.acked);
    cells[4].textContent = formatBytes(inPipe);
    cells[5].textContent = formatBytes(c.buffered);
    cells[6].textContent = formatBytes(c.rate) + "/s";
    cells[7].textContent = formatDuration(c.waitedNow(now));
    cells[8].textContent = String(c.stallsNow(now));
    cells[9].textContent = c.serverStopped ? `stopped reading ${formatDuration(now - c.stoppedSince)}` : (c.active ? "reading" : "");
    cells[9].className = c.serverStopped ? "server-stopped" : "";
  }
}

function color(i) { return COLORS[i % COLORS.length]; }

function buildTable(r) {
  const body = $("conns").tBodies[0];
  body.replaceChildren();
  for (const c of r.conns) {
    const row = body.insertRow();
    row.dataset.conn = String(c.index);
    for (let i = 0; i < 10; i++) {
      const cell = row.insertCell();
      if (i >= 2 && i <= 8) cell.className = "num";
    }
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = color(c.index);
    row.cells[0].append(sw, String(c.index + 1));
    c.row = row;
  }
}

function buildLegend(r) {
  const legend = $("legend");
  legend.replaceChildren();
  const item = (label, col) => {
    const s = document.createElement("span");
    const i = document.createElement("i");
    i.style.background = col;
    s.append(i, label);
    legend.append(s);
  };
  if (r.conns.length > 1) item("total", TOTAL_COLOR);
  for (const c of r.conns) item(`connection ${c.index + 1}`, color(c.index));
}

const CHARTS = [
  ["chart-buffered", "b", "B"],
  ["chart-rate", "r", "B/s"],
  ["chart-acked", "a", "B"],
  ["chart-in-pipe", "p", "B"],
];

function draw(r) {
  // While running, the time axis starts at 10 s and grows; a finished run
  // fits its own length, so a short run is not squeezed into a corner.
  const last = r.samples.length ? r.samples[r.samples.length - 1].t : 0;
  const tMax = r.endedAt ? Math.max(last, 0.5) : Math.max(10, last);
  const h2 = r.settings.transport === "h2";
  const down = r.settings.direction === "down";
  for (const [id, key, bytesUnit] of CHARTS) {
    const unit = h2 && key === "b" ? "ms" : bytesUnit;
    const ref = key !== "b" || down ? 0 : h2 ? r.settings.stallMs : r.settings.highWater;
    const lines = r.conns.map((c, i) => ({
      color: color(i), width: 1.5, points: r.samples.map((s) => ({ t: s.t, v: s.per[i][key] })),
    }));
    if (r.conns.length > 1) {
      lines.push({ color: TOTAL_COLOR, width: 2.2, points: r.samples.map((s) => ({ t: s.t, v: s.tot[key] })) });
    }
    drawChart($(id), { lines, bands: r.bands, tMax, unit, ref });
  }
}

// report builds the end-of-run report, with the same rows as bp-client's.
function report(r) {
  const s = r.settings;
  const durationMs = r.endedAt - r.startedAt;
  const secs = durationMs / 1000;
  const t = r.totals(r.endedAt);
  const failed = r.conns.filter((c) => c.state === "failed");
  const st = r.state();
  return {
    run_id: r.runId, target: s.target, transport: s.transport, direction: s.direction, connections: r.conns.length, payload_size: s.payloadSize,
    // The browser's own record of the protocol of each HTTP/2 run's upload.
    http_protocols: s.transport === "h2" ? r.conns.map((c) => c.protocol || "") : [],
    result: st === "done" ? "completed" : st, error: failed.length ? failed[0].error : "",
    failed_connections: failed.length, stopped_early: r.stopping,
    duration_ms: durationMs, bytes_sent: t.sent, bytes_acked: t.acked, messages: t.messages,
    asked_messages_per_second: s.rate * r.conns.length,
    achieved_messages_per_second: secs > 0 ? t.messages / secs : 0,
    send_bytes_per_second: secs > 0 ? t.sent / secs : 0,
    high_water: s.highWater, waited_ms: t.waitedMs,
    waited_share: secs > 0 ? t.waitedMs / (durationMs * r.conns.length) : 0,
    stall_threshold_ms: s.stallMs, stalls: t.stalls,
    longest_wait_ms: Math.max(...r.conns.map((c) => c.longestWaitMs)),
    server_stops: t.episodes, longest_server_stop_ms: Math.max(...r.conns.map((c) => c.longestStopMs)),
    peak_in_pipe: r.samples.reduce((m, x) => Math.max(m, x.tot.p), 0),
    // Over HTTP/2 the first chart's values are waits, not bytes.
    peak_buffered: s.transport === "h2" ? 0 : r.samples.reduce((m, x) => Math.max(m, x.tot.b), 0),
  };
}

function reportText(x) {
  const rows = [];
  const row = (k, v) => rows.push("  " + k.padEnd(16) + " " + v);
  let status = x.result === "completed" ? "completed" : x.result.toUpperCase();
  if (x.error) status += ": " + x.error;
  if (x.result === "completed" && x.stopped_early) status += " (stopped early with Stop)";
  const asked = x.asked_messages_per_second > 0
    ? `${x.asked_messages_per_second.toFixed(1)} msg/s (${formatBytes(x.asked_messages_per_second * x.payload_size)}/s)`
    : "as fast as bufferedAmount allows";
  const ack = x.bytes_acked === x.bytes_sent ? "all bytes read by the server"
    : `${formatBytes(x.bytes_sent - x.bytes_acked)} NOT acknowledged`;
  row("result", status);
  row("duration", (x.duration_ms / 1000).toFixed(2) + " s");
  row("sent", `${formatBytes(x.bytes_sent)} in ${x.messages} messages (${x.bytes_sent} bytes)`);
  row("rate", `${x.achieved_messages_per_second.toFixed(1)} msg/s, ${formatBytes(x.send_bytes_per_second)}/s; asked: ${asked}`);
  row("acknowledged", `${x.bytes_acked} bytes (${ack})`);
  const on = x.transport === "h2" ? "for the browser to take the next chunk (pull)" : `on bufferedAmount ≥ ${formatBytes(x.high_water)}`;
  row("waited", `${formatDuration(x.waited_ms)} ${on}, ${(100 * x.waited_share).toFixed(0)}% of the run`);
  row("stalls", `${x.stalls} waits ≥ ${x.stall_threshold_ms} ms, longest ${formatDuration(x.longest_wait_ms)}`);
  row("server stopped", x.server_stops === 0 ? "never (acks kept coming)"
    : `${x.server_stops} time(s), longest ${formatDuration(x.longest_server_stop_ms)} without an ack while bytes were in the pipe`);
  row("peak in pipe", `${formatBytes(x.peak_in_pipe)} sent but not yet read by the server`);
  if (x.transport !== "h2") row("peak buffered", `${formatBytes(x.peak_buffered)} in bufferedAmount`);
  else row("protocol", `${[...new Set(x.http_protocols)].join(", ") || "unknown"} (the browser's record of the uploads)`);
  if (x.failed_connections > 0) row("failed", `${x.failed_connections} connection(s)`);
  const over = x.transport === "h2" ? "HTTP/2 (fetch)" : "WebSocket";
  return `browser client report: run ${x.run_id}, ${x.target} over ${over}, direction ${x.direction}, ${x.connections} connection(s)\n` + rows.join("\n");
}

// reportDown is the end-of-run report of a download: what the page read,
// what the server said it wrote (its fin), and the page's own pause.
function reportDown(r) {
  const s = r.settings;
  const durationMs = r.endedAt - r.startedAt;
  const failed = r.conns.filter((c) => c.state === "failed");
  const st = r.state();
  return {
    run_id: r.runId, target: s.target, transport: s.transport, direction: "down", connections: r.conns.length, payload_size: s.payloadSize,
    http_protocols: r.conns.map((c) => c.protocol || ""),
    result: st === "done" ? "completed" : st, error: failed.length ? failed[0].error : "",
    failed_connections: failed.length, stopped_early: r.stopping,
    duration_ms: durationMs, asked_messages_per_second: s.rate * r.conns.length,
    ...readFields(r),
  };
}

// readFields are what the page read of the server's payload (a download,
// or a both run's download half), against what the server said it wrote.
function readFields(r) {
  const s = r.settings;
  const secs = (r.endedAt - r.startedAt) / 1000;
  const sum = (f) => r.conns.reduce((a, c) => a + f(c), 0);
  const read = sum((c) => c.readBytes);
  return {
    bytes_read: read, bytes_read_acked: sum((c) => c.readAcked), messages_read: sum((c) => c.readMessages),
    // The servers' fins, summed: -1 when some connection ended before its fin.
    server_bytes: r.conns.some((c) => c.serverBytes < 0) ? -1 : sum((c) => c.serverBytes),
    read_bytes_per_second: secs > 0 ? read / secs : 0,
    read_rate: s.readRate, read_pause_after_ms: s.readPauseAfterMs, read_pause_ms: s.readPauseMs,
    read_paused_ms: sum((c) => c.readPausedNow(r.endedAt)),
  };
}

function reportDownText(x) {
  const rows = [];
  const row = (k, v) => rows.push("  " + k.padEnd(16) + " " + v);
  let status = x.result === "completed" ? "completed" : x.result.toUpperCase();
  if (x.error) status += ": " + x.error;
  row("result", status);
  row("duration", (x.duration_ms / 1000).toFixed(2) + " s");
  readRows(x, row);
  row("protocol", `${[...new Set(x.http_protocols)].join(", ") || "unknown"} (the browser's record of the downloads)`);
  if (x.failed_connections > 0) row("failed", `${x.failed_connections} connection(s)`);
  return `browser client report: run ${x.run_id}, ${x.target} over HTTP/2 (fetch), direction down, ${x.connections} connection(s)\n` + rows.join("\n");
}

function readRows(x, row) {
  row("read", `${formatBytes(x.bytes_read)} in ${x.messages_read} messages (${x.bytes_read} bytes), ${formatBytes(x.read_bytes_per_second)}/s`);
  row("server wrote", x.server_bytes < 0 ? "unknown (no fin from the server)" : `${x.server_bytes} bytes (its fin)`);
  row("acked to server", `${x.bytes_read_acked} bytes of what the page read`);
  row("stopped reading", x.read_pause_ms > 0 ? `${formatDuration(x.read_paused_ms)} on purpose, ${formatDuration(x.read_pause_after_ms)} in` : "never");
}

function showReport(r) {
  if (r.settings.direction === "down") {
    const x = reportDown(r);
    window.bpReport = x;
    $("summary").textContent = reportDownText(x);
    Object.assign($("summary").dataset, { result: x.result, runId: x.run_id, bytesRead: x.bytes_read, bytesAcked: x.bytes_read_acked, serverBytes: x.server_bytes });
    return;
  }
  const x = r.settings.direction === "both" ? { ...report(r), ...readFields(r) } : report(r);
  window.bpReport = x;
  const el = $("summary");
  el.textContent = reportText(x);
  if (x.direction === "both") {
    const rows = [];
    readRows(x, (k, v) => rows.push("  " + k.padEnd(16) + " " + v));
    el.textContent += "\n" + rows.join("\n");
  }
  Object.assign(el.dataset, {
    result: x.result, runId: x.run_id, bytesSent: x.bytes_sent, bytesAcked: x.bytes_acked, messages: x.messages,
    durationMs: Math.round(x.duration_ms), waitedMs: Math.round(x.waited_ms), stalls: x.stalls,
    serverStops: x.server_stops, peakInPipe: x.peak_in_pipe, peakBuffered: x.peak_buffered,
  });
}

// ---- controls ----

function setRunningControls() {
  $("start").disabled = true;
  $("stop").disabled = false;
  $("stop").textContent = "Stop";
  for (const el of $("controls").elements) if (el.tagName !== "BUTTON") el.disabled = true;
}

function setIdleControls() {
  $("start").disabled = false;
  $("stop").disabled = true;
  $("stop").textContent = "Stop";
  for (const el of $("controls").elements) if (el.tagName !== "BUTTON") el.disabled = false;
}

function init() {
  prefill();
  onTransportChange();
  $("transport").addEventListener("change", onTransportChange);
  $("direction").addEventListener("change", applyDirection);
  $("controls").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (run && !run.ended) return;
    let settings;
    try {
      settings = readSettings();
    } catch (err) {
      $("form-error").textContent = err.message;
      return;
    }
    $("form-error").textContent = "";
    $("summary").textContent = "Running…";
    $("summary").dataset.result = "running";
    run = new Run(settings);
    setRunningControls();
    run.start();
  });
  $("stop").addEventListener("click", () => {
    if (!run || run.ended) return;
    run.stop();
    // A second press closes at once, without waiting for the final ack.
    $("stop").textContent = "Abort";
  });
  window.addEventListener("resize", () => { if (run) draw(run); });
}

init();
