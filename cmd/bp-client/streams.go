package main

import (
	"context"
	"sync"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// muxConn is one connection of a multiplexed target (gRPC, HTTP/2) shared
// by its --streams streams. Each stream is a connRun of its own, whose dial
// opens a stream on the shared connection; the connection is dialed by
// the first stream that needs it, and again after it broke.
type muxConn struct {
	target flow.Target
	opts   flow.SocketOptions

	mu  sync.Mutex
	mux flow.Mux // nil until dialed, and after it broke
}

// get returns the connection, dialing it when there is none.
func (m *muxConn) get(ctx context.Context) (flow.Mux, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mux != nil {
		return m.mux, nil
	}
	mux, err := flow.DialMux(ctx, m.target, m.opts)
	if err != nil {
		return nil, err
	}
	m.mux = mux
	return mux, nil
}

// drop forgets mux after a stream could not open on it, so the next
// attempt dials a new connection; the broken one is closed.
func (m *muxConn) drop(mux flow.Mux) {
	m.mu.Lock()
	if m.mux == mux {
		m.mux = nil
	}
	m.mu.Unlock()
	mux.Close()
}

// close ends the connection once its streams are done.
func (m *muxConn) close() {
	m.mu.Lock()
	mux := m.mux
	m.mux = nil
	m.mu.Unlock()
	if mux != nil {
		mux.Close()
	}
}

// streamDial is how stream k of the connection opens: its hello names its
// place, and asks for full speed when it is not one of the --slow-streams.
func (m *muxConn) streamDial(k, slow int) func(context.Context, flow.Hello) (flow.Conn, error) {
	return func(ctx context.Context, hello flow.Hello) (flow.Conn, error) {
		hello.Stream = k
		hello.FullSpeed = slow >= 0 && k >= slow
		mux, err := m.get(ctx)
		if err != nil {
			return nil, err
		}
		c, err := mux.OpenStream(ctx, hello)
		if err != nil {
			m.drop(mux)
			return nil, err
		}
		return c, nil
	}
}

// runStreams runs one connection's streams side by side, each as a run of
// its own, and closes the connection when all are done.
func (c *client) runStreams(ctx context.Context, cr connRun, record func(error)) {
	target, _ := c.cfg.target() // checked by Validate
	m := &muxConn{target: target, opts: c.cfg.socketOptions()}
	defer m.close()
	var wg sync.WaitGroup
	for k := range c.cfg.Streams {
		sr := cr
		sr.dial = m.streamDial(k, c.cfg.SlowStreams)
		wg.Go(func() { record(runConn(ctx, &sr)) })
	}
	wg.Wait()
}
