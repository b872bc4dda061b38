// The bytes of an HTTP/2 run, as bp-client sends them (docs/PROTOCOL.md,
// "TCP"; docs/HTTP2.md): the request body is the hello line, then frames
// of a type byte ("D" data, "C" control), a 4-byte big-endian length and
// the body. The ack stream's response carries control frames the same way.

const FRAME_DATA = 0x44; // "D"
const FRAME_CONTROL = 0x43; // "C"
const HEADER = 5;
const MAX_CONTROL = 4096;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// helloLine is `BP/1 {json}\n`; its fields are in the order Go's encoder
// writes them (flow.Hello), so the page's bytes are bp-client's.
export function helloLine(hello) {
  const h = { type: "hello", version: 1 };
  for (const k of ["run_id", "direction", "payload_size", "total_bytes", "rate"]) {
    if (hello[k]) h[k] = hello[k]; // omitempty, as in Go
  }
  return encoder.encode("BP/1 " + JSON.stringify(h) + "\n");
}

function header(buf, type, length) {
  buf[0] = type;
  new DataView(buf.buffer, buf.byteOffset, HEADER).setUint32(1, length);
}

// dataFrame is one payload message as a frame: header and payload in one
// chunk, so the browser takes them together.
export function dataFrame(payload) {
  const f = new Uint8Array(HEADER + payload.length);
  header(f, FRAME_DATA, payload.length);
  f.set(payload, HEADER);
  return f;
}

// controlFrame is a control message (fin) as a frame; its JSON is Go's
// (flow.AppendControl): type, then bytes.
export function controlFrame(ctl) {
  const body = encoder.encode(JSON.stringify({ type: ctl.type, bytes: ctl.bytes }));
  const f = new Uint8Array(HEADER + body.length);
  header(f, FRAME_CONTROL, body.length);
  f.set(body, HEADER);
  return f;
}

// FrameParser takes the ack stream's bytes as they arrive, cut anywhere,
// and returns the control messages they complete. A data frame, an
// unknown type or an oversized control frame is an error: an ack stream
// carries control messages only.
export class FrameParser {
  constructor() {
    this.buf = new Uint8Array(0);
  }

  push(chunk) {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf);
    joined.set(chunk, this.buf.length);
    const out = [];
    let at = 0;
    while (joined.length - at >= HEADER) {
      const type = joined[at];
      const size = new DataView(joined.buffer, at + 1, 4).getUint32(0);
      if (type !== FRAME_CONTROL) throw new Error(`the ack stream sent a frame of type 0x${type.toString(16)}, not a control frame`);
      if (size > MAX_CONTROL) throw new Error(`the ack stream sent a control frame of ${size} bytes (at most ${MAX_CONTROL})`);
      if (joined.length - at < HEADER + size) break;
      out.push(JSON.parse(decoder.decode(joined.subarray(at + HEADER, at + HEADER + size))));
      at += HEADER + size;
    }
    this.buf = joined.slice(at);
    return out;
  }
}

const FRAME_REFUSAL = 0x42; // "B": "BP/1 refused: why\n", the server's refusal line
const MAX_REFUSAL = 256;

// StreamParser takes a download's response as it arrives, cut anywhere:
// data frames (counted, never copied: a payload frame may be 16 MiB),
// control frames (the server's fin; its acks in a both run) and the
// refusal line a server ends a run with before it started. push returns
// what the chunk completed, in order: { data: n } for n payload bytes (a
// frame's may come in pieces; frameEnd marks its last), { control: msg },
// or { refused: why }.
export class StreamParser {
  constructor() {
    this.head = new Uint8Array(HEADER);
    this.headN = 0;
    this.remain = 0; // payload bytes left in the current data frame
    this.control = null; // the control frame's body being read
    this.controlN = 0;
    this.refusal = null; // the refusal line's bytes so far
  }

  push(chunk) {
    const out = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.remain > 0) {
        const n = Math.min(this.remain, chunk.length - at);
        this.remain -= n;
        at += n;
        out.push({ data: n, frameEnd: this.remain === 0 });
      } else if (this.control) {
        const n = Math.min(this.control.length - this.controlN, chunk.length - at);
        this.control.set(chunk.subarray(at, at + n), this.controlN);
        this.controlN += n;
        at += n;
        if (this.controlN === this.control.length) {
          out.push({ control: JSON.parse(decoder.decode(this.control)) });
          this.control = null;
        }
      } else if (this.refusal) {
        at = this.pushRefusal(chunk, at, out);
      } else {
        const n = Math.min(HEADER - this.headN, chunk.length - at);
        this.head.set(chunk.subarray(at, at + n), this.headN);
        this.headN += n;
        at += n;
        if (this.headN === HEADER) this.frame(out);
      }
    }
    return out;
  }

  // frame starts the frame whose header is complete.
  frame(out) {
    this.headN = 0;
    const type = this.head[0];
    const size = new DataView(this.head.buffer).getUint32(1);
    if (type === FRAME_REFUSAL && decoder.decode(this.head) === "BP/1 ") {
      this.refusal = [];
    } else if (type === FRAME_DATA) {
      this.remain = size;
      if (size === 0) out.push({ data: 0, frameEnd: true });
    } else if (type === FRAME_CONTROL) {
      if (size === 0 || size > MAX_CONTROL) throw new Error(`the server sent a control frame of ${size} bytes (1 to ${MAX_CONTROL})`);
      this.control = new Uint8Array(size);
      this.controlN = 0;
    } else {
      throw new Error(`the server sent a frame of unknown type 0x${type.toString(16)}`);
    }
  }

  pushRefusal(chunk, at, out) {
    while (at < chunk.length && chunk[at] !== 0x0a && this.refusal.length < MAX_REFUSAL) this.refusal.push(chunk[at++]);
    if (at < chunk.length || this.refusal.length >= MAX_REFUSAL) {
      const line = decoder.decode(new Uint8Array(this.refusal));
      out.push({ refused: line.replace(/^refused:\s*/, "").trim() });
      this.refusal = null;
      return chunk.length; // nothing follows a refusal
    }
    return at;
  }
}

// ackFrame is the page's ack, as the reading side sends it (Go's
// flow.AppendControl: type, then bytes).
export function ackFrame(bytes) { return controlFrame({ type: "ack", bytes }); }
