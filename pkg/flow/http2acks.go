package flow

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// A browser's fetch() streams a request body only half duplex: the
// response is readable once the body has ended, so an upload cannot read
// its acks on its own stream. A page therefore opens a sibling stream on
// the same HTTP/2 connection first (a GET whose response streams), and
// the upload's acks are sent there (docs/HTTP2.md, "The browser"). The
// bytes are those of any HTTP/2 run: the upload's body is the hello line
// and framed TCP, the sibling response carries the control frames the
// upload's own response would have.

// maxQueuedControls bounds the control messages an AckStream holds for a
// reader that is slow to take them. Acks replace each other (they are
// cumulative), so an upload queues at most one at a time.
const maxQueuedControls = 16

// AckStream is the sibling response that carries one upload's control
// messages. Send never blocks, so an upload whose ack stream stalls or
// went away is still read and counted; Serve writes what was sent.
type AckStream struct {
	mu      sync.Mutex
	pending []Control
	ended   bool  // the run is over: Serve ends once the queue is written
	err     error // Serve's write failed: later messages are dropped
	wake    chan struct{}
}

// NewAckStream returns an empty ack stream.
func NewAckStream() *AckStream { return &AckStream{wake: make(chan struct{}, 1)} }

// Send queues ctl for Serve. An ack replaces an ack still queued, as the
// reader would learn nothing from the older one.
func (a *AckStream) Send(ctl Control) {
	a.mu.Lock()
	switch n := len(a.pending); {
	case a.err != nil || a.ended:
	case n > 0 && ctl.Type == Ack && a.pending[n-1].Type == Ack && !a.pending[n-1].echoesPath():
		a.pending[n-1] = ctl
	case n < maxQueuedControls:
		a.pending = append(a.pending, ctl)
	}
	a.mu.Unlock()
	a.signal()
}

// End says the run is over: Serve returns once what is queued is written.
func (a *AckStream) End() {
	a.mu.Lock()
	a.ended = true
	a.mu.Unlock()
	a.signal()
}

func (a *AckStream) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Serve writes the queued messages to w as control frames (flushing each
// batch) until End and an empty queue, or ctx's end, or a write error,
// which it returns.
func (a *AckStream) Serve(ctx context.Context, w io.Writer, flush func() error) error {
	var buf []byte
	for {
		a.mu.Lock()
		batch, ended := a.pending, a.ended
		a.pending = nil
		a.mu.Unlock()
		if len(batch) > 0 {
			buf = buf[:0]
			for _, ctl := range batch {
				buf = appendControlFrame(buf, ctl)
			}
			_, err := w.Write(buf)
			if err == nil {
				err = flush()
			}
			if err != nil {
				a.mu.Lock()
				a.err = err
				a.mu.Unlock()
				return err
			}
			continue
		}
		if ended {
			return nil
		}
		select {
		case <-a.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// AcceptHTTP2Acks is AcceptHTTP2 for an upload whose control messages go
// to acks: its hello must ask for an upload (direction up), since only
// the page's writes can go on a half duplex stream; any other is a
// HelloError, and nothing was written.
func AcceptHTTP2Acks(w http.ResponseWriter, r *http.Request, sock net.Conn, helloTimeout time.Duration, acks *AckStream) (*Hello, Conn, error) {
	hello, c, err := acceptHTTP2(w, r, sock, helloTimeout, func(h *Hello, _ *tcpConn) error {
		switch {
		case h == nil:
			return errors.New("an upload with an ack stream starts with a hello line")
		case h.Direction != Up && h.Direction != "":
			return errors.New("an ack stream serves uploads only (direction up): a half duplex request cannot read")
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return hello, &ackRoutedConn{h2Conn: c, acks: acks}, nil
}

// ackRoutedConn is an HTTP/2 upload whose control messages go to its ack
// stream; the rest is the stream's own.
type ackRoutedConn struct {
	*h2Conn
	acks *AckStream
}

// WriteControl queues ctl on the ack stream; it never blocks.
func (c *ackRoutedConn) WriteControl(ctl Control) error {
	c.acks.Send(ctl)
	return nil
}
