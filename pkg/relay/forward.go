package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// The loops that move one direction's bytes: a reader per direction, and a
// writer per pipe that is not direct.

// readLoop reads from src into p (payload) and handles src's control
// messages: acks go to dst unchanged, a fin ends p after its bytes.
func (s *session) readLoop(ctx context.Context, src, dst *side, p *pipe) {
	if p.direct && !s.raw {
		if pt := newPassthrough(src.conn, dst.conn); pt != nil {
			s.passthroughLoop(ctx, src, dst, p, pt)
			return
		}
	}
	buf := make([]byte, p.chunk)
	for {
		// A direct pipe holds nothing between reads: always room.
		if !p.direct {
			if err := p.waitRoom(ctx); err != nil {
				return
			}
		}
		n, ctl, err := src.conn.Read(buf)
		if n > 0 {
			p.read.Add(int64(n))
			src.obs.Read(n)
			if p.hold(ctx, n) != nil {
				return // the connection ends: the bytes go with it
			}
			if p.direct {
				if !s.writeDirect(p, dst, buf[:n]) {
					return
				}
			} else {
				p.push(buf[:n])
			}
		}
		if ctl.Type != "" {
			if cerr := s.handleControl(src, dst, p, ctl, true); cerr != nil {
				s.fail(src.side, cerr)
				return
			}
			if p.direct && ctl.Type == flow.Fin {
				s.passEnd(p, dst)
			}
		}
		if err == nil {
			continue
		}
		s.readEnded(ctx, src, dst, p, err)
		return
	}
}

// readEnded handles the error that ended src's reading.
func (s *session) readEnded(ctx context.Context, src, dst *side, p *pipe, err error) {
	if s.closing.Load() || ctx.Err() != nil {
		return
	}
	if errors.Is(err, io.EOF) || (!s.raw && flow.IsReset(err) && s.complete()) {
		// A framed peer that resets the connection once the run is
		// complete closed it with bytes unread (an ack it no longer
		// needed): as clean as a close.
		if s.raw {
			p.end(false, 0) // a raw peer ends its stream by closing it
			if p.direct {
				s.passEnd(p, dst)
			}
		} else {
			src.eofOnce.Do(func() { close(src.eof) })
		}
		return
	}
	s.fail(src.side, fmt.Errorf("read %s: %w", src.side, err))
}

// handleControl handles a control message src sent. An ack acknowledges
// what this relay wrote to src and goes on unchanged to dst, unless forward
// is false (a passthrough writes it with the bytes around it); a fin ends
// p once its byte count matches what arrived.
func (s *session) handleControl(src, dst *side, p *pipe, ctl flow.Control, forward bool) error {
	switch ctl.Type {
	case flow.Ack:
		if last := src.acks.Acked(); ctl.Bytes < last {
			return flow.ProtocolError{Err: fmt.Errorf("%s peer acknowledged %d bytes after %d: acks go backwards", src.side, ctl.Bytes, last)}
		}
		// The ack moves src's in-pipe figure, and goes on to dst, whose
		// writer it is really for.
		src.acks.Ack(ctl.Bytes)
		if !forward {
			break
		}
		// Once the run is complete, an ack the writer no longer waits for
		// may find it gone: not a failure.
		if err := dst.conn.WriteControl(ctl); err != nil && !s.closing.Load() && !s.complete() {
			s.fail(dst.side, fmt.Errorf("forward ack %s: %w", dst.side, err))
		}
	case flow.Fin:
		if p.hasEnded() {
			return flow.ProtocolError{Err: fmt.Errorf("%s peer sent a second fin", src.side)}
		}
		if got := p.read.Load(); got != ctl.Bytes {
			return flow.ProtocolError{Err: fmt.Errorf("%s peer wrote %d bytes, %d arrived", src.side, ctl.Bytes, got)}
		}
		p.end(true, ctl.Bytes)
	}
	return nil
}

// writeLoop writes what p holds to dst, then passes p's end on: a fin, or
// for a raw connection a half-close.
func (s *session) writeLoop(ctx context.Context, p *pipe, dst *side) {
	for {
		b, ended, ok := p.next(ctx)
		if !ok {
			return
		}
		if ended {
			s.passEnd(p, dst)
			return
		}
		err := s.writeBlock(p, dst, b)
		p.release(b)
		if err != nil {
			return
		}
	}
}

// streamPauseAfter is how long a direct pipe's write must block before its
// reader counts as paused (Observer.ReadingPaused): the reader does not
// read while it writes, and a write blocked this long is the upstream's
// backpressure, not the system call's own time.
const streamPauseAfter = time.Millisecond

// writeDirect writes b, just read, from the reading goroutine (a direct
// pipe): b counts as buffered while the write is in progress, exactly as a
// queued block would, and a write that blocks for streamPauseAfter counts
// as a pause in reading until it returns. It reports whether the relay goes
// on.
func (s *session) writeDirect(p *pipe, dst *side, b []byte) bool {
	n := int64(len(b))
	p.obs.Buffered(p.dir, n)
	p.startWrite()
	err := s.writeBlock(p, dst, b)
	p.endWrite()
	p.obs.Buffered(p.dir, -n)
	p.budget.release(n)
	return err == nil
}

// writeBlock writes one block of payload to dst, counted and observed; a
// write error fails the relay unless it is closing.
func (s *session) writeBlock(p *pipe, dst *side, b []byte) error {
	began := dst.writes.Begin()
	n, err := dst.conn.WritePayload(b)
	if n > 0 {
		p.written.Add(int64(n))
	}
	dst.writes.End(began, n)
	if err != nil && !s.closing.Load() {
		s.fail(dst.side, fmt.Errorf("write %s: %w", dst.side, err))
	}
	return err
}

// passEnd passes p's end on to dst once every byte before it was written:
// a fin, or for a raw connection a half-close.
func (s *session) passEnd(p *pipe, dst *side) {
	var err error
	if fin, isFin := p.fin(); isFin {
		err = dst.conn.WriteControl(flow.Control{Type: flow.Fin, Bytes: fin})
	} else {
		err = flow.CloseWrite(dst.conn)
	}
	if err != nil {
		if !s.closing.Load() {
			s.fail(dst.side, fmt.Errorf("forward end of stream %s: %w", dst.side, err))
		}
		return
	}
	close(p.done)
}
