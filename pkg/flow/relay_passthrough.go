package flow

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// In stream mode everything a relay writes to one side comes from its
// reader of the other side, in order: payload, the acks it forwards, the
// fin. Between two framed TCP connections the byte stream written is
// therefore the byte stream read, frame for frame. A passthrough forwards
// it as such, like socat: one read of up to one read's worth of raw bytes,
// one write of the same bytes, and in between a parse of the frames in them
// for the relay's own accounting (payload counted, acks and the fin seen
// and checked). No frame header costs a system call of its own.
//
//	src --read (<= one read, raw)--> parse: payload, acks, fin --write (same bytes)--> dst

// passthrough is one direction's frame parser.
type passthrough struct {
	src, dst *tcpConn
	remain   int // payload bytes left in the current data frame
	hdr      [frameHeader]byte
	hdrN     int    // header bytes collected
	ctlSize  int    // body size of the control frame being collected, -1: none
	ctl      []byte // its body so far
	finDone  bool   // a fin was passed on
}

// newPassthrough returns a parser for src to dst, or nil unless both are
// framed TCP connections.
func newPassthrough(src, dst Conn) *passthrough {
	s, ok1 := src.(*tcpConn)
	d, ok2 := dst.(*tcpConn)
	if !ok1 || !ok2 || !s.framed || !d.framed || s.remain != 0 {
		return nil
	}
	return &passthrough{src: s, dst: d, ctlSize: -1}
}

// parse walks b's frames: onPayload gets the payload bytes seen before each
// control message and at the end, onControl each control message.
func (pt *passthrough) parse(b []byte, onPayload func(int), onControl func(Control) error) error {
	payload := 0
	flush := func() {
		if payload > 0 {
			onPayload(payload)
			payload = 0
		}
	}
	for len(b) > 0 {
		switch {
		case pt.remain > 0:
			m := min(pt.remain, len(b))
			payload += m
			pt.remain -= m
			b = b[m:]
		case pt.ctlSize >= 0:
			m := min(pt.ctlSize-len(pt.ctl), len(b))
			pt.ctl = append(pt.ctl, b[:m]...)
			b = b[m:]
			if len(pt.ctl) == pt.ctlSize {
				pt.ctlSize = -1
				ctl, err := ParseControl(pt.ctl)
				if err != nil {
					return err
				}
				flush()
				if err := onControl(ctl); err != nil {
					return err
				}
			}
		default:
			m := copy(pt.hdr[pt.hdrN:], b)
			pt.hdrN += m
			b = b[m:]
			if pt.hdrN < frameHeader {
				continue
			}
			pt.hdrN = 0
			size := int(binary.BigEndian.Uint32(pt.hdr[1:]))
			switch pt.hdr[0] {
			case frameData:
				if size > MaxPayloadSize {
					return tooLargef("data frame of %d bytes exceeds %d", size, MaxPayloadSize)
				}
				pt.remain = size
			case frameControl:
				if size > MaxControlSize {
					return tooLargef("control frame of %d bytes exceeds %d", size, MaxControlSize)
				}
				pt.ctlSize, pt.ctl = size, pt.ctl[:0]
				if size == 0 {
					pt.ctlSize = -1
					if _, err := ParseControl(nil); err != nil {
						return err
					}
				}
			default:
				return protocolErrorf("unknown frame type 0x%02x", pt.hdr[0])
			}
		}
	}
	flush()
	return nil
}

// midFrame reports whether the stream stopped inside a frame.
func (pt *passthrough) midFrame() bool { return pt.remain > 0 || pt.hdrN > 0 || pt.ctlSize >= 0 }

// passthroughLoop is readLoop for a stream relay between framed TCP
// connections: the same buffer (one read's worth, no reading while the
// write blocks), counters, acks, fin and errors, without re-framing.
func (s *relaySession) passthroughLoop(ctx context.Context, src, dst *relaySide, p *relayPipe, pt *passthrough) {
	buf := make([]byte, p.chunk)
	onPayload := func(n int) {
		p.read.Add(int64(n))
		src.obs.Read(n)
	}
	finInChunk := false
	onControl := func(ctl Control) error {
		if err := s.handleControlFwd(src, dst, p, ctl, false); err != nil {
			return err
		}
		if ctl.Type == Fin {
			finInChunk = true
		}
		return nil
	}
	for {
		if err := p.waitRoom(ctx); err != nil {
			return
		}
		n, err := pt.src.r.Read(buf)
		before := p.read.Load()
		finInChunk = false
		if perr := pt.parse(buf[:n], onPayload, onControl); perr != nil {
			p.reserved(0)
			s.fail(src.side, perr)
			return
		}
		payload := int(p.read.Load() - before)
		p.reserved(payload)
		if n > 0 {
			if werr := s.writeRaw(p, dst, buf[:n], payload); werr != nil {
				if s.closing.Load() {
					return
				}
				if payload > 0 || finInChunk || !s.complete() {
					s.fail(dst.side, fmt.Errorf("write %s: %w", dst.side, werr))
					return
				}
				// Only acks the writer no longer waits for: not a failure.
			} else if finInChunk && !pt.finDone {
				pt.finDone = true
				close(p.done)
			}
		}
		if err == nil {
			continue
		}
		if err == io.EOF && pt.midFrame() {
			err = fmt.Errorf("read frame: %w", io.ErrUnexpectedEOF)
		}
		s.readEnded(ctx, src, dst, p, err)
		return
	}
}

// writeRaw writes raw bytes holding payload bytes of payload to dst, with
// writeDirect's accounting: the payload counts as buffered while the write
// is in progress, and a write blocked long enough is a pause in reading.
func (s *relaySession) writeRaw(p *relayPipe, dst *relaySide, raw []byte, payload int) error {
	n := int64(payload)
	p.obs.Buffered(p.dir, n)
	p.startWrite()
	began := time.Now()
	if w, ok := dst.obs.(WriteStartObserver); ok && payload > 0 {
		w.WriteStarting(began)
	}
	d := dst.conn.(*tcpConn)
	d.wmu.Lock()
	_, err := d.conn.Write(raw)
	d.wmu.Unlock()
	blocked := time.Since(began)
	p.endWrite()
	p.obs.Buffered(p.dir, -n)
	p.budget.release(n)
	if payload > 0 {
		written := 0
		if err == nil {
			written = payload
			p.written.Add(n)
			if d.framed {
				dst.obs.InPipe(n)
			}
		}
		dst.obs.Wrote(written, blocked, blocked >= s.cfg.StallThreshold)
	}
	return err
}
