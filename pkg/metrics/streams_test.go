package metrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
)

// streamProtocol is the protocol the stream tests label their streams
// with: gRPC once its transport is among flow.Protocols, tcp until then
// (the sampler keeps figures only for protocols it has a slot for).
func streamProtocol() flow.Protocol {
	if flow.ProtocolIndex(flow.GRPC) >= 0 {
		return flow.GRPC
	}
	return flow.TCP
}

// series reads one series of reg by name and labels; ok false when absent.
func series(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, want := range labels {
				if labelValue(m, k) != want {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			}
		}
	}
	return 0, false
}

// TestStreamMetrics: the bp_stream_* metrics are the streams' figures as
// the sampler polled them: blocked seconds per layer and WINDOW_UPDATE
// counts summed over streams (a closed stream's last figures kept), the
// windows' minimum over the open streams, the streams shut now.
func TestStreamMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	sampler, err := metrics.NewSocketSampler(reg, metrics.SamplerOptions{Interval: time.Hour}) // passes by hand
	if err != nil {
		t.Fatal(err)
	}
	proto := streamProtocol()
	slow, fast := flowtest.NewStream(0, flow.StreamStats{}), flowtest.NewStream(1, flow.StreamStats{})
	slow.Set(func(st *flow.StreamStats) {
		*st = flow.StreamStats{SendStreamWindow: 0, SendConnWindow: 900_000, RecvStreamWindow: 65_535, RecvConnWindow: 1 << 20,
			BlockedStream: 2500 * time.Millisecond, WindowUpdatesReceived: 4, WindowUpdatesSent: 2, Source: "frames"}
	})
	fast.Set(func(st *flow.StreamStats) {
		*st = flow.StreamStats{SendStreamWindow: 40_000, SendConnWindow: 900_000, RecvStreamWindow: 30_000, RecvConnWindow: 1 << 20,
			BlockedTCP: 250 * time.Millisecond, WindowUpdatesReceived: 10, Source: "frames"}
	})
	os := sampler.Open(flow.ConnInfo{Protocol: proto, Writes: true, Stream: slow})
	of := sampler.Open(flow.ConnInfo{Protocol: proto, Writes: true, Stream: fast})
	defer of.Closed(nil)
	sampler.Sample(time.Now())

	p := string(proto)
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"bp_stream_sampled_streams", map[string]string{"protocol": p}, 2},
		{"bp_stream_blocked_seconds_total", map[string]string{"protocol": p, "layer": "stream"}, 2.5},
		{"bp_stream_blocked_seconds_total", map[string]string{"protocol": p, "layer": "connection"}, 0},
		{"bp_stream_blocked_seconds_total", map[string]string{"protocol": p, "layer": "tcp"}, 0.25},
		{"bp_stream_send_window_min_bytes", map[string]string{"protocol": p, "layer": "stream"}, 0},
		{"bp_stream_send_window_min_bytes", map[string]string{"protocol": p, "layer": "connection"}, 900_000},
		{"bp_stream_recv_window_min_bytes", map[string]string{"protocol": p, "layer": "stream"}, 30_000},
		{"bp_stream_recv_window_min_bytes", map[string]string{"protocol": p, "layer": "connection"}, 1 << 20},
		{"bp_stream_window_updates_total", map[string]string{"protocol": p, "direction": "received"}, 14},
		{"bp_stream_window_updates_total", map[string]string{"protocol": p, "direction": "sent"}, 2},
		{"bp_stream_window_closed_streams", map[string]string{"protocol": p}, 1},
	}
	check := func(when string) {
		t.Helper()
		for _, w := range want {
			got, ok := series(t, reg, w.name, w.labels)
			if !ok || got != w.value {
				t.Errorf("%s: %s%v = %v (present %v), want %v", when, w.name, w.labels, got, ok, w.value)
			}
		}
	}
	check("first pass")

	// The slow stream is read again and ends: its window reopened, 0.5 s
	// more on the stream window and one more WINDOW_UPDATE, counted at
	// close; the gauges are the fast stream's alone at the next pass.
	slow.Set(func(st *flow.StreamStats) {
		st.SendStreamWindow = 65_535
		st.BlockedStream += 500 * time.Millisecond
		st.WindowUpdatesReceived++
	})
	os.(flow.ClosingObserver).Closing()
	os.Closed(nil)
	sampler.Sample(time.Now())
	want[0].value = 1      // sampled streams
	want[1].value = 3      // blocked on the stream window
	want[4].value = 40_000 // lowest send stream window: the fast stream's
	want[8].value = 15     // WINDOW_UPDATEs received
	want[10].value = 0     // closed streams
	check("after the slow stream closed")
}
