package flow_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// TestSlowUploadGoroutines: while slow uploads are open, a server session
// (idle timeout on) runs in its caller's goroutine alone, and a writing
// client session in its caller's and its reader's: the acks and the idle
// watch are timers, not goroutines (docs/BENCHMARKS.md, many slow
// connections). Each connection still acks what it read.
func TestSlowUploadGoroutines(t *testing.T) {
	const conns = 20
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var serving atomic.Int64
	var acked atomic.Int64
	addr := flowtest.ServeTCP(t, flow.SocketOptions{}, time.Second, func(ctx context.Context, h *flow.Hello, c flow.Conn, err error) {
		if err != nil {
			return
		}
		plan := flowtest.ServerPlan(h, flow.ReadSettings{})
		plan.IdleTimeout = time.Minute
		serving.Add(1)
		defer serving.Add(-1)
		flow.NewSession(c, plan, nil).Run(ctx)
	})
	before := runtime.NumGoroutine()
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range conns {
		c, err := flow.DialTCP(ctx, addr, flow.Hello{RunID: "t", PayloadSize: 1 << 10}, flow.SocketOptions{})
		if err != nil {
			t.Fatal(err)
		}
		plan := flowtest.ClientPlan(flow.Up, 0)
		plan.Write.Payload = plan.Write.Payload[:1<<10]
		plan.Write.Rate = 20 // messages a second: slow, but acked within the test
		s := flow.NewSession(c, plan, nil)
		wg.Go(func() {
			s.Run(runCtx)
			acked.Add(s.Snapshot().Acked)
		})
	}
	for serving.Load() < conns && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // every connection writes and is acked a few times
	// Per connection: the server's session goroutine (the test server's
	// per-connection goroutine), the client's Run and its reader. Before
	// the timers, the server also held an acker and an idle watch.
	got := runtime.NumGoroutine() - before
	stop()
	wg.Wait()
	if max := 3*conns + 4; got > max {
		t.Errorf("%d goroutines for %d slow connections, want at most %d (3 each)", got, conns, max)
	}
	if acked.Load() < conns<<10 {
		t.Errorf("%d bytes acknowledged over %d connections, want at least 1 KiB each", acked.Load(), conns)
	}
}
