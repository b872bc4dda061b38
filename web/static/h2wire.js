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
