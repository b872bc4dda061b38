package flow

import (
	"encoding/binary"
)

// TCP framing after a hello (see docs/PROTOCOL.md): every frame is a type
// byte, a 4-byte big-endian length, and the body.
const (
	frameData    = 'D'
	frameControl = 'C'
	// FrameHeaderSize is the bytes of a frame header: type and length.
	FrameHeaderSize = 5
	frameHeader     = FrameHeaderSize
)

// appendControlFrame appends ctl as one control frame: header and JSON.
func appendControlFrame(dst []byte, ctl Control) []byte {
	start := len(dst)
	dst = append(dst, frameControl, 0, 0, 0, 0)
	dst = AppendControl(dst, ctl)
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-frameHeader))
	return dst
}

// frameHead is a decoded frame header.
type frameHead struct {
	control bool // a control frame; otherwise a data frame
	size    int  // body bytes
}

// parseFrameHeader decodes and checks one frame header: a known type, and a
// body no larger than that type's limit. The TCP transport's reader and the
// FrameScanner both decode headers here, so they refuse the same frames.
func parseFrameHeader(hdr *[FrameHeaderSize]byte) (frameHead, error) {
	size := int(binary.BigEndian.Uint32(hdr[1:]))
	switch hdr[0] {
	case frameData:
		if size > MaxPayloadSize {
			return frameHead{}, tooLargef("data frame of %d bytes exceeds %d", size, MaxPayloadSize)
		}
		return frameHead{size: size}, nil
	case frameControl:
		if size > MaxControlSize {
			return frameHead{}, tooLargef("control frame of %d bytes exceeds %d", size, MaxControlSize)
		}
		return frameHead{control: true, size: size}, nil
	}
	return frameHead{}, protocolErrorf("unknown frame type 0x%02x", hdr[0])
}

// FrameScanner walks a framed TCP stream handed to it in pieces cut
// anywhere (raw reads of the socket), without copying payload: it reports
// how many payload bytes it saw and every control message, and refuses what
// the TCP transport's reader refuses. A relay's passthrough uses it to
// account for the bytes it forwards as they are. The zero value is ready
// at a frame boundary.
type FrameScanner struct {
	remain  int // payload bytes left in the current data frame
	size    int // the current data frame's payload size
	hdr     [FrameHeaderSize]byte
	hdrN    int    // header bytes collected
	inCtl   bool   // collecting a control frame's body
	ctlSize int    // its size
	ctl     []byte // its body so far
}

// Scan walks b's frames: onPayload gets the payload bytes seen before each
// control message and at the end, onControl each control message; an error
// of onControl ends the scan with it.
func (fs *FrameScanner) Scan(b []byte, onPayload func(int), onControl func(Control) error) error {
	payload := 0
	for len(b) > 0 {
		switch {
		case fs.remain > 0:
			m := min(fs.remain, len(b))
			payload += m
			fs.remain -= m
			b = b[m:]
		case fs.inCtl:
			m := min(fs.ctlSize-len(fs.ctl), len(b))
			fs.ctl = append(fs.ctl, b[:m]...)
			b = b[m:]
			if len(fs.ctl) < fs.ctlSize {
				continue
			}
			fs.inCtl = false
			ctl, err := ParseControl(fs.ctl)
			if err != nil {
				return err
			}
			if payload > 0 {
				onPayload(payload)
				payload = 0
			}
			if err := onControl(ctl); err != nil {
				return err
			}
		default:
			if err := fs.scanHeader(&b); err != nil {
				return err
			}
		}
	}
	if payload > 0 {
		onPayload(payload)
	}
	return nil
}

// scanHeader collects header bytes from the front of *b and, once the
// header is whole, starts its frame.
func (fs *FrameScanner) scanHeader(b *[]byte) error {
	m := copy(fs.hdr[fs.hdrN:], *b)
	fs.hdrN += m
	*b = (*b)[m:]
	if fs.hdrN < FrameHeaderSize {
		return nil
	}
	fs.hdrN = 0
	h, err := parseFrameHeader(&fs.hdr)
	if err != nil {
		return err
	}
	switch {
	case !h.control:
		fs.remain, fs.size = h.size, h.size
	case h.size == 0:
		_, err = ParseControl(nil) // an empty control frame is no control message
	default:
		fs.inCtl, fs.ctlSize, fs.ctl = true, h.size, fs.ctl[:0]
	}
	return err
}

// MidFrame reports whether the stream so far stopped inside a frame.
func (fs *FrameScanner) MidFrame() bool { return fs.remain > 0 || fs.hdrN > 0 || fs.inCtl }

// PayloadLeft is the bytes of the current data frame's payload that are
// still to come, none while a header or a control frame is being read: a
// relay may move them without looking at them (Skip), and a splice(2)
// passthrough does.
func (fs *FrameScanner) PayloadLeft() int {
	if fs.hdrN > 0 || fs.inCtl {
		return 0
	}
	return fs.remain
}

// DataSize is the payload size of the data frame whose payload comes
// next (PayloadLeft of it still to come); 0 when none does.
func (fs *FrameScanner) DataSize() int {
	if fs.PayloadLeft() == 0 {
		return 0
	}
	return fs.size
}

// Skip counts n payload bytes of the current data frame that were moved
// without passing through Scan; n is at most PayloadLeft.
func (fs *FrameScanner) Skip(n int) {
	if n < 0 || n > fs.PayloadLeft() {
		panic("flow: FrameScanner.Skip past the data frame's payload")
	}
	fs.remain -= n
}

// DataFrame reports whether hdr, the next bytes of a stream at a frame
// boundary, start with a whole, valid data frame header, and its payload
// size: a relay that peeked them decides from it whether to splice the
// frame, before it scans the header.
func DataFrame(hdr []byte) (size int, ok bool) {
	if len(hdr) < FrameHeaderSize {
		return 0, false
	}
	h, err := parseFrameHeader((*[FrameHeaderSize]byte)(hdr))
	if err != nil || h.control {
		return 0, false
	}
	return h.size, true
}
