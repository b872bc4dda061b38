package flow

import (
	"net"
	"time"
)

// Observer receives what connections do. pkg/metrics implements it for
// Prometheus and the client's report implements it for its summary; Multi
// joins several. Implementations must be safe for concurrent use.
type Observer interface {
	// Open is called once per connection; the returned ConnObserver gets that
	// connection's events, so an implementation can resolve its labels once
	// instead of on every write.
	Open(info ConnInfo) ConnObserver
}

// ConnInfo describes a connection when it opens.
type ConnInfo struct {
	Protocol Protocol
	// Conn is the socket underneath (for kernel socket statistics); it may be
	// nil in tests.
	Conn net.Conn
	// Writes and Reads say which way payload flows on this side: a writer's
	// socket is sampled for the peer's window and its send queue, a reader's
	// for its own window and receive queue.
	Writes, Reads bool
	// Stream is set when the connection is one stream of a multiplexed
	// connection (HTTP/2, gRPC): its stream-layer view, and its index, so
	// the shared socket's kernel statistics are counted once.
	Stream StreamConn
}

// ConnObserver receives one connection's events. The write and read events
// come from different goroutines.
type ConnObserver interface {
	// Wrote is called after every payload write call: n payload bytes
	// accepted, blocked the time the call took, stalled when that was at
	// least the stall threshold.
	Wrote(n int, blocked time.Duration, stalled bool)
	// Read is called after every payload read call that returned bytes.
	Read(n int)
	// Acked is called when the peer acknowledges delta more bytes read.
	Acked(delta int64)
	// InPipe is called with every change of the bytes written but not yet
	// acknowledged (positive on writes, negative on acks and at close). It is
	// only called on connections whose peer sends acks.
	InPipe(delta int64)
	// Paused is called when the reader deliberately stops reading (paused =
	// true) and when it resumes, with the time it spent stopped.
	Paused(paused bool, stopped time.Duration)
	// Throttled is called with time the reader waited for its read delay or
	// read rate limit.
	Throttled(d time.Duration)
	// Closed is called once when the connection ends; err is nil for a clean
	// end.
	Closed(err error)
}

// WriteStartObserver is an optional ability of a ConnObserver: WriteStarting
// is called as each payload write call begins. Wrote only comes when the call
// returns, so without it a write blocked for a minute is invisible for that
// minute; with it, metrics can show writes blocked right now.
type WriteStartObserver interface {
	WriteStarting(began time.Time)
}

// ClosingObserver is an optional ability of a ConnObserver: Closing is
// called once, just before the session closes the connection, while the
// socket underneath can still be read. Kernel socket statistics take their
// last sample there, so counters that grow until the end lose nothing.
type ClosingObserver interface {
	Closing()
}

// Nop is an Observer that ignores everything: the default.
type Nop struct{}

var (
	_ Observer     = Nop{}
	_ ConnObserver = Nop{}
)

func (Nop) Open(ConnInfo) ConnObserver     { return Nop{} }
func (Nop) Wrote(int, time.Duration, bool) {}
func (Nop) Read(int)                       {}
func (Nop) Acked(int64)                    {}
func (Nop) InPipe(int64)                   {}
func (Nop) Paused(bool, time.Duration)     {}
func (Nop) Throttled(time.Duration)        {}
func (Nop) Closed(error)                   {}

// Multi sends every event to each observer in turn.
func Multi(obs ...Observer) Observer {
	if len(obs) == 1 {
		return obs[0]
	}
	return multi(obs)
}

type multi []Observer

func (m multi) Open(info ConnInfo) ConnObserver {
	cs := make(multiConn, len(m))
	for i, o := range m {
		cs[i] = o.Open(info)
	}
	return cs
}

type multiConn []ConnObserver

func (m multiConn) Wrote(n int, b time.Duration, s bool) {
	for _, o := range m {
		o.Wrote(n, b, s)
	}
}
func (m multiConn) Read(n int) {
	for _, o := range m {
		o.Read(n)
	}
}
func (m multiConn) Acked(d int64) {
	for _, o := range m {
		o.Acked(d)
	}
}
func (m multiConn) InPipe(d int64) {
	for _, o := range m {
		o.InPipe(d)
	}
}
func (m multiConn) Paused(p bool, d time.Duration) {
	for _, o := range m {
		o.Paused(p, d)
	}
}
func (m multiConn) Throttled(d time.Duration) {
	for _, o := range m {
		o.Throttled(d)
	}
}
func (m multiConn) WriteStarting(began time.Time) {
	for _, o := range m {
		if w, ok := o.(WriteStartObserver); ok {
			w.WriteStarting(began)
		}
	}
}

func (m multiConn) Path(via []string, seenFrom string) {
	for _, o := range m {
		if p, ok := o.(PathObserver); ok {
			p.Path(via, seenFrom)
		}
	}
}

func (m multiConn) Closing() {
	for _, o := range m {
		if c, ok := o.(ClosingObserver); ok {
			c.Closing()
		}
	}
}
func (m multiConn) Closed(err error) {
	for _, o := range m {
		o.Closed(err)
	}
}
