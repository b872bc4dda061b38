package flow_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// serveTCP listens on 127.0.0.1:0 with opts and, for every connection,
// reads its hello (waiting at most helloTimeout) and calls handle in a
// goroutine of its own; err is AcceptTCP's, with c nil. At cleanup the
// listener closes, ctx is cancelled and every handler is waited for. It is
// the accept loop of bp-server and bp-relay in miniature, for tests.
func serveTCP(tb testing.TB, opts flow.SocketOptions, helloTimeout time.Duration,
	handle func(ctx context.Context, h *flow.Hello, c flow.Conn, err error)) string {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := flow.ListenTCP(ctx, "127.0.0.1:0", opts)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); cancel(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, c, err := flow.AcceptTCP(nc, helloTimeout)
				if err != nil {
					nc.Close()
				}
				handle(ctx, h, c, err)
			}()
		}
	}()
	return ln.Addr().String()
}

// send delivers v on ch unless ctx ends first, so a handler never outlives
// a test that stopped reading its results.
func send[T any](ctx context.Context, ch chan<- T, v T) {
	select {
	case ch <- v:
	case <-ctx.Done():
	}
}
