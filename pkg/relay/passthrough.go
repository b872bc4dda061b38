package relay

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// In stream mode everything a relay writes to one side comes from its
// reader of the other side, in order: payload, the acks it forwards, the
// fin. Between two framed raw streams (framed TCP: flow.RawStream) the
// byte stream written is therefore the byte stream read, frame for frame.
// A passthrough forwards it as such, like socat: one read of up to one
// read's worth of raw bytes, one write of the same bytes, and in between a
// flow.FrameScanner over them for the relay's own accounting (payload
// counted, acks and the fin seen and checked). No frame header costs a
// system call of its own.
//
//	src --read (<= one read, raw)--> scan: payload, acks, fin --write (same bytes)--> dst

// passthrough is one direction's raw streams and frame scanner.
type passthrough struct {
	src, dst flow.RawStream
	scan     flow.FrameScanner
	finDone  bool // a fin was passed on
	// The splice(2) path (splice.go): srcConn and dstConn make the pipe
	// on first use; sp is nil until then, and for good when it cannot
	// be made (tried).
	srcConn, dstConn flow.Conn
	sp               *flow.Splice
	tried            bool
	big              bool // the last data frame seen was large: peek at the next boundary
	splicing         bool // the current data frame's payload goes through the pipe to its end
	hdrLeft          int  // bytes of a peeked (scanned) header still in the source socket
	steps            int  // splice steps taken (yieldEvery)
	hdr              [flow.FrameHeaderSize]byte
}

// newPassthrough returns a passthrough for src to dst, or nil unless both
// are framed raw streams and src is at a frame boundary.
func newPassthrough(src, dst flow.Conn) *passthrough {
	s, ok1 := src.(flow.RawStream)
	d, ok2 := dst.(flow.RawStream)
	if !ok1 || !ok2 || !s.Framed() || !d.Framed() || !s.AtFrameBoundary() {
		return nil
	}
	return &passthrough{src: s, dst: d, srcConn: src, dstConn: dst, big: true}
}

// passthroughLoop is readLoop for a stream relay between framed raw
// streams: the same buffer (one read's worth, no reading while the write
// blocks), counters, acks, fin and errors, without re-framing.
func (s *session) passthroughLoop(ctx context.Context, src, dst *side, p *pipe, pt *passthrough) {
	buf := make([]byte, p.chunk)
	r := pt.src.RawReader()
	onPayload := func(n int) {
		p.read.Add(int64(n))
		src.obs.Read(n)
	}
	finInChunk := false
	onControl := func(ctl flow.Control) error {
		if err := s.handleControl(src, dst, p, ctl, false); err != nil {
			return err
		}
		if ctl.Type == flow.Fin {
			finInChunk = true
		}
		return nil
	}
	defer pt.closeSplice()
	for {
		if pt.spliceNext(p) {
			if !s.spliceStep(ctx, src, dst, p, pt, onPayload) {
				return
			}
			continue
		}
		n, err := r.Read(buf[:pt.copySize(len(buf))])
		before := p.read.Load()
		finInChunk = false
		if perr := pt.scan.Scan(buf[:n], onPayload, onControl); perr != nil {
			s.fail(src.side, perr)
			return
		}
		payload := int(p.read.Load() - before)
		if p.hold(ctx, payload) != nil {
			return // the connection ends: the bytes go with it
		}
		pt.sawData()
		if n > 0 && !s.forwardRaw(p, dst, pt, buf[:n], payload, finInChunk) {
			return
		}
		if err == nil {
			continue
		}
		if err == io.EOF && pt.scan.MidFrame() {
			err = fmt.Errorf("read frame: %w", io.ErrUnexpectedEOF)
		}
		s.readEnded(ctx, src, dst, p, err)
		return
	}
}

// forwardRaw writes one read's raw bytes (nil: the splice pipe's),
// holding payload bytes of payload (and a fin when finInChunk), to dst,
// and reports whether the relay goes on. A fin written closes the pipe's
// done.
func (s *session) forwardRaw(p *pipe, dst *side, pt *passthrough, raw []byte, payload int, finInChunk bool) bool {
	werr := s.writeRaw(p, dst, pt, raw, payload)
	switch {
	case werr == nil:
		if finInChunk && !pt.finDone {
			pt.finDone = true
			close(p.done)
		}
	case s.closing.Load():
		return false
	case payload > 0 || finInChunk || !s.complete():
		s.fail(dst.side, fmt.Errorf("write %s: %w", dst.side, werr))
		return false
	}
	// An error writing only acks the writer no longer waits for: not a
	// failure.
	return true
}

// writeRaw writes raw bytes holding payload bytes of payload to dst (raw
// nil: what the splice pipe holds), with writeDirect's accounting: the
// payload counts as buffered while the write is in progress, and a write
// blocked long enough is a pause in reading.
func (s *session) writeRaw(p *pipe, dst *side, pt *passthrough, raw []byte, payload int) error {
	n := int64(payload)
	p.obs.Buffered(p.dir, n)
	if raw != nil {
		p.startWrite() // a splice starts it when it has to wait (OnWait)
	}
	var began time.Time
	if payload > 0 {
		began = dst.writes.Begin()
	}
	var err error
	if raw == nil {
		_, err = pt.sp.Drain()
	} else {
		_, err = pt.dst.WriteRaw(raw)
	}
	if payload > 0 {
		written := 0
		if err == nil {
			written = payload
			p.written.Add(n)
		}
		dst.writes.End(began, written)
	}
	p.endWrite()
	p.obs.Buffered(p.dir, -n)
	p.budget.release(n)
	return err
}
