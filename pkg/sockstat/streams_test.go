package sockstat

import (
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// TestSamplerStreamLayer: the sampler polls each open stream's figures at
// its passes and at close: the blocked times and WINDOW_UPDATE counts add
// each stream's growth (nothing lost when one closes, nothing counted
// twice), the gauges are the lowest windows over open streams, and the
// run keeps the lowest windows and the first closure.
func TestSamplerStreamLayer(t *testing.T) {
	s := NewSampler(SamplerOptions{Interval: time.Hour}) // passes by hand
	tcp := flow.ProtocolIndex(flow.TCP)
	t0 := time.Now()
	a := flowtest.NewStream(0, flow.StreamStats{})
	b := flowtest.NewStream(1, flow.StreamStats{})
	a.Set(func(st *flow.StreamStats) {
		*st = flow.StreamStats{SendStreamWindow: 65535, SendConnWindow: 1 << 20, RecvStreamWindow: 65535, RecvConnWindow: 1 << 20,
			BlockedTCP: 100 * time.Millisecond, WindowUpdatesReceived: 3, WindowUpdatesSent: 1, Source: "frames"}
	})
	b.Set(func(st *flow.StreamStats) {
		*st = flow.StreamStats{SendStreamWindow: 0, SendConnWindow: 1 << 20, RecvStreamWindow: 65535, RecvConnWindow: 1 << 20,
			BlockedStream: 2 * time.Second, StreamClosedAt: t0.Add(2100 * time.Millisecond), WindowUpdatesReceived: 1, Source: "frames"}
	})
	oa := s.Open(flow.ConnInfo{Protocol: flow.TCP, Writes: true, Stream: a})
	ob := s.Open(flow.ConnInfo{Protocol: flow.TCP, Writes: true, Stream: b})
	s.Sample(time.Now())
	st := s.StreamStats()[tcp]
	want := StreamProtocolStats{
		StreamGauges: StreamGauges{Streams: 2, SendStreamWindowMin: 0, SendConnWindowMin: 1 << 20, RecvStreamWindowMin: 65535,
			RecvConnWindowMin: 1 << 20, SendWindowClosedStreams: 1},
		StreamCounters: StreamCounters{BlockedStream: 2 * time.Second, BlockedTCP: 100 * time.Millisecond, WindowUpdatesReceived: 4, WindowUpdatesSent: 1},
	}
	if st != want {
		t.Errorf("first pass:\n got %+v\nwant %+v", st, want)
	}

	// Stream b blocks 1s more and closes: its last figures count at close.
	b.Set(func(st *flow.StreamStats) {
		st.BlockedStream += time.Second
		st.BlockedConn = 500 * time.Millisecond
		st.WindowUpdatesReceived++
	})
	ob.(flow.ClosingObserver).Closing()
	ob.Closed(nil)
	a.Set(func(st *flow.StreamStats) { st.SendStreamWindow = 1000; st.WindowUpdatesSent++ })
	s.Sample(time.Now())
	st = s.StreamStats()[tcp]
	want = StreamProtocolStats{
		StreamGauges: StreamGauges{Streams: 1, SendStreamWindowMin: 1000, SendConnWindowMin: 1 << 20, RecvStreamWindowMin: 65535,
			RecvConnWindowMin: 1 << 20},
		StreamCounters: StreamCounters{BlockedStream: 3 * time.Second, BlockedConn: 500 * time.Millisecond,
			BlockedTCP: 100 * time.Millisecond, WindowUpdatesReceived: 5, WindowUpdatesSent: 2},
	}
	if st != want {
		t.Errorf("after b closed:\n got %+v\nwant %+v", st, want)
	}
	tot := s.StreamTotals()
	if tot.Streams != 2 || tot.ClosedStreams != 1 || tot.SendStreamWindowLowest != 0 || tot.SendConnWindowLowest != 1<<20 ||
		!tot.StreamClosedAt.Equal(t0.Add(2100*time.Millisecond)) || !tot.ConnClosedAt.IsZero() || len(tot.Sources) != 1 || tot.Sources[0] != "frames" {
		t.Errorf("run totals: %+v; want 2 streams, 1 closed, lowest send windows 0 and 1 MiB, stream window closed at t0+2.1s, conn never, source frames", tot)
	}

	// A new run: its own lowest windows and closures; counters from a base.
	base := s.StreamTotals()
	s.ResetPeak()
	a.Set(func(st *flow.StreamStats) { st.BlockedTCP += time.Second })
	oa.(flow.ClosingObserver).Closing()
	tot = s.StreamTotals().Since(base)
	if tot.Streams != 0 || tot.ClosedStreams != 0 || tot.SendStreamWindowLowest != -1 || !tot.StreamClosedAt.IsZero() || tot.BlockedTCP != time.Second {
		t.Errorf("second run: %+v; want no streams of its own, lowest unknown, no closure, 1s blocked on TCP", tot)
	}
}
