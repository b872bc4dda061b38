package flow

import (
	"encoding/binary"

	"golang.org/x/net/http2"
)

// H2FrameWalker follows the frames of one direction of an HTTP/2 byte
// stream that arrives cut anywhere (the bytes of each Read or Write), without
// taking it over: it reads the 9-byte frame headers, skips the payloads
// (copying only the bytes Keep asks for) and says where each frame begins
// and ends. Both of the project's HTTP/2 taps use it: the gRPC connection's
// (pkg/flow, to follow the windows) and bp-server's (internal/hop, to count
// frames and stop floods). The zero value walks from a frame boundary.
type H2FrameWalker struct {
	// Skip is how many bytes to pass before the first frame: the client
	// preface (len(http2.ClientPreface)) on what a client writes or a
	// server reads.
	Skip int
	// Keep says how many of a frame's first payload bytes to keep for the
	// frame callback of Walk (0 or nil: none), so that only the frames a
	// tap decodes are copied.
	Keep func(http2.FrameHeader) int
	// Data, if set, hears of each stream's DATA payload bytes as they
	// pass (padding included), wherever frames are cut: what a tap
	// counts per stream.
	Data func(streamID uint32, n int)

	hdr     [9]byte
	hdrN    int // header bytes of the next frame read so far
	cur     http2.FrameHeader
	remain  int // payload bytes of cur still to come
	keep    int
	payload []byte
}

// Walk takes the next bytes of the stream. It calls header (if not nil)
// as each frame header completes, before the frame's payload has passed,
// and frame (if not nil) as each whole frame has passed, with the payload
// bytes Keep asked for; that slice is the walker's, valid during the call.
// It returns how many of b's bytes were DATA payload (padding included), so
// a tap can count what fills a peer's stream buffers wherever frames are cut.
func (w *H2FrameWalker) Walk(b []byte, header func(http2.FrameHeader), frame func(http2.FrameHeader, []byte)) (data int) {
	if w.Skip > 0 {
		n := min(w.Skip, len(b))
		w.Skip -= n
		b = b[n:]
	}
	for len(b) > 0 {
		if w.remain == 0 {
			n := copy(w.hdr[w.hdrN:], b)
			w.hdrN += n
			b = b[n:]
			if w.hdrN < len(w.hdr) {
				return data
			}
			w.start(header)
			if w.remain == 0 {
				w.finish(frame)
				continue
			}
		}
		n := min(w.remain, len(b))
		if len(w.payload) < w.keep {
			w.payload = append(w.payload, b[:min(n, w.keep-len(w.payload))]...)
		}
		if w.cur.Type == http2.FrameData {
			data += n
			if w.Data != nil && n > 0 {
				w.Data(w.cur.StreamID, n)
			}
		}
		w.remain -= n
		b = b[n:]
		if w.remain == 0 {
			w.finish(frame)
		}
	}
	return data
}

// start begins the frame whose header was just read.
func (w *H2FrameWalker) start(header func(http2.FrameHeader)) {
	h := w.hdr[:]
	w.cur = http2.FrameHeader{Length: uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2]),
		Type: http2.FrameType(h[3]), Flags: http2.Flags(h[4]), StreamID: binary.BigEndian.Uint32(h[5:]) & (1<<31 - 1)}
	w.hdrN, w.remain, w.keep, w.payload = 0, int(w.cur.Length), 0, w.payload[:0]
	if w.Keep != nil {
		w.keep = min(w.Keep(w.cur), w.remain)
	}
	if header != nil {
		header(w.cur)
	}
}

func (w *H2FrameWalker) finish(frame func(http2.FrameHeader, []byte)) {
	if frame != nil {
		frame(w.cur, w.payload)
	}
}

// MidFrame reports whether the stream so far stopped inside the preface or
// a frame: bytes written now would land inside it.
func (w *H2FrameWalker) MidFrame() bool { return w.Skip > 0 || w.remain > 0 || w.hdrN > 0 }
