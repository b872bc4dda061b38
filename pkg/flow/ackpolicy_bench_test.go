package flow_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// ackCounter counts the acks a writing session receives.
type ackCounter struct {
	flow.Nop
	acks *atomic.Int64
}

func (a ackCounter) Open(flow.ConnInfo) flow.ConnObserver { return a }
func (a ackCounter) Acked(int64)                          { a.acks.Add(1) }

// BenchmarkSessionAcks: a whole up run, a client session writing 64 KiB
// payloads as fast as loopback allows into a server session that reads and
// acks them (TCP and WebSocket): what the acks cost the run, and how many
// come (acks/s, which the ack policy bounds).
func BenchmarkSessionAcks(b *testing.B) {
	const size = 64 << 10
	for _, proto := range []flow.Protocol{flow.TCP, flow.WebSocket} {
		b.Run(string(proto), func(b *testing.B) {
			var addr string
			if proto == flow.TCP {
				a, _ := flowtest.StartTCPServer(b, flow.ReadSettings{}, flow.SocketOptions{})
				addr = "tcp://" + a
			} else {
				addr, _ = flowtest.StartWSServer(b, flow.ReadSettings{})
			}
			target, err := flow.ParseTarget(addr)
			if err != nil {
				b.Fatal(err)
			}
			total := int64(b.N) * size
			c, err := flow.Dial(context.Background(), target, &flow.Hello{RunID: "bench", PayloadSize: size, TotalBytes: total}, flow.SocketOptions{})
			if err != nil {
				b.Fatal(err)
			}
			var acks atomic.Int64
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			snap, err := flow.NewSession(c, flowtest.ClientPlan(flow.Up, total), ackCounter{acks: &acks}).Run(context.Background())
			if err != nil || snap.Acked != total {
				b.Fatalf("acked %d of %d: %v", snap.Acked, total, err)
			}
			b.ReportMetric(float64(acks.Load())/b.Elapsed().Seconds(), "acks/s")
		})
	}
}
