package relay_test

// Benchmarks of the relay's hot path over real loopback sockets, with the
// same run direct in the same benchmark as the reference: the number to
// read is the ratio. See docs/BENCHMARKS.md.
//
//	go test -run '^$' -bench . -benchmem -count 5 ./pkg/relay/

import (
	"context"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/relay"
)

// benchPayload is bp-client's default payload size.
const benchPayload = 64 << 10

// BenchmarkRelay: a whole up run (client session, server session reading
// and acking) direct, and through one stream-mode relay; both TCP. The
// ratio of their MB/s is what the hop costs. relay-stream-budget is the
// stream relay with a shared budget, as bp-relay runs it (--buffer-max).
func BenchmarkRelay(b *testing.B) {
	payload := flowtest.Payload(benchPayload)
	run := func(b *testing.B, addr string) {
		ctx := context.Background()
		total := int64(b.N) * int64(len(payload))
		c, err := flow.DialTCP(ctx, addr, flow.Hello{RunID: "bench", PayloadSize: len(payload), TotalBytes: total}, flow.SocketOptions{})
		if err != nil {
			b.Fatal(err)
		}
		plan := flow.Plan{Initiator: true, Write: &flow.WritePlan{Payload: payload, TotalBytes: total}}
		snap, err := flow.NewSession(c, plan, nil).Run(ctx)
		if err != nil || snap.Acked != total {
			b.Fatalf("acked %d of %d: %v", snap.Acked, total, err)
		}
	}
	for _, via := range []string{"direct", "relay-stream", "relay-stream-budget"} {
		b.Run(via, func(b *testing.B) {
			addr := sinkServer(b)
			switch via {
			case "relay-stream":
				addr = streamRelay(b, addr, nil)
			case "relay-stream-budget":
				addr = streamRelay(b, addr, relay.NewBudget(1<<30))
			}
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			b.ResetTimer()
			run(b, addr)
		})
	}
}

// sinkServer is bp-server's TCP sink in miniature: one reading session per
// connection, acks and all.
func sinkServer(tb testing.TB) string {
	tb.Helper()
	return flowtest.ServeTCP(tb, flow.SocketOptions{}, time.Second, func(ctx context.Context, h *flow.Hello, c flow.Conn, err error) {
		if err == nil {
			flow.NewSession(c, flow.Plan{PeerWrites: h == nil || h.Direction.ClientWrites()}, nil).Run(ctx)
		}
	})
}

// streamRelay is bp-relay's TCP listener in stream mode, forwarding to
// upstream, with budget as its cap (nil: none).
func streamRelay(tb testing.TB, upstream string, budget *relay.Budget) string {
	tb.Helper()
	target := flow.Target{Protocol: flow.TCP, Addr: upstream}
	rl := relay.New(relay.Config{Name: "bench", Budget: budget}, func(ctx context.Context, h *flow.Hello) (flow.Conn, error) {
		return flow.Dial(ctx, target, h, flow.SocketOptions{})
	})
	return flowtest.ServeTCP(tb, flow.SocketOptions{}, time.Second, func(ctx context.Context, h *flow.Hello, c flow.Conn, err error) {
		if err == nil {
			rl.Serve(ctx, c, h)
		}
	})
}
