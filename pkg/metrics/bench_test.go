package metrics_test

// What the instrumentation costs: an observer call per write, the write loop
// with every observer bp-client uses against none, and a /metrics scrape
// with 10,000 connections registered. One sampling pass is
// BenchmarkSocketSamplerPass (sockets_test.go). See docs/BENCHMARKS.md.
//
//	go test -run '^$' -bench . -benchmem -count 5 ./pkg/metrics/

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
	"github.com/go-backpressure/go-backpressure/pkg/report"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// clientObservers builds what bp-client observes every connection with:
// the core metrics, the socket sampler (sampling every interval while ctx
// lasts; 0 is off) and the report's recorder.
func clientObservers(tb testing.TB, interval time.Duration) flow.Observer {
	tb.Helper()
	reg := metrics.NewRegistry()
	m := metrics.New(reg, "bench")
	sampler, err := metrics.NewSocketSampler(reg, metrics.SamplerOptions{Interval: interval})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sampler.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return flow.Multi(m, sampler, report.NewRecorder())
}

// BenchmarkObserverWrote: one Wrote call, as the write loop makes after
// every write: on the core metrics alone, and on all of bp-client's
// observers (metrics, sampler, recorder with its latency histogram).
func BenchmarkObserverWrote(b *testing.B) {
	m := metrics.New(prometheus.NewRegistry(), "bench")
	for _, c := range []struct {
		name string
		obs  flow.Observer
	}{
		{"nop", flow.Nop{}},
		{"metrics", m},
		{"client", clientObservers(b, 0)},
	} {
		b.Run(c.name, func(b *testing.B) {
			o := c.obs.Open(flow.ConnInfo{Protocol: flow.TCP, Writes: true})
			defer o.Closed(nil)
			b.ReportAllocs()
			for b.Loop() {
				o.InPipe(64 << 10)
				o.Wrote(64<<10, 37*time.Microsecond, false)
			}
		})
	}
}

// discardAddr accepts loopback connections and discards what they send.
func discardAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); io.Copy(io.Discard, c) }()
		}
	}()
	return ln.Addr().String()
}

// writeOnly hides a framed connection's control messages from a session,
// so its writer neither sends a fin nor waits for acks: it only writes.
type writeOnly struct{ flow.Conn }

func (writeOnly) SpeaksControl() bool             { return false }
func (writeOnly) WriteControl(flow.Control) error { return nil }

// runWrites runs one session that writes writes payloads of size over a
// fresh loopback TCP connection into a discarding reader.
func runWrites(tb testing.TB, addr string, obs flow.Observer, payload []byte, writes int) {
	ctx := context.Background()
	c, err := flow.DialTCP(ctx, addr, flow.Hello{RunID: "bench", PayloadSize: len(payload)}, flow.SocketOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	total := int64(writes) * int64(len(payload))
	plan := flow.Plan{Initiator: true, Write: &flow.WritePlan{Payload: payload, TotalBytes: total}}
	snap, err := flow.NewSession(writeOnly{c}, plan, obs).Run(ctx)
	if err != nil || snap.Written != total {
		tb.Fatalf("wrote %d of %d: %v", snap.Written, total, err)
	}
}

// BenchmarkInstrumentedWriteLoop: the write loop with no observer against
// the loop with all of bp-client's observers, the sampler reading the
// socket every 100 ms, over loopback TCP into a discarding reader. The
// ratio of their MB/s is the instrumentation's cost (target: at most 3%).
func BenchmarkInstrumentedWriteLoop(b *testing.B) {
	payload := make([]byte, 64<<10)
	for _, c := range []struct {
		name string
		obs  func(testing.TB) flow.Observer
	}{
		{"off", func(testing.TB) flow.Observer { return flow.Nop{} }},
		{"on", func(tb testing.TB) flow.Observer { return clientObservers(tb, sockstat.DefaultSampleInterval) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			addr := discardAddr(b)
			obs := c.obs(b)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			b.ResetTimer()
			runWrites(b, addr, obs, payload, b.N)
		})
	}
}

// TestWriteLoopAllocs: once running, the write loop allocates nothing per
// write, with every observer bp-client uses. A run's fixed cost (dialling,
// goroutines, timers) is the same for short and long runs, so the
// difference between a run of 1,100 writes and one of 100, over 1,000
// writes, is what the writes themselves allocate.
func TestWriteLoopAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2 x 4.5 MiB over loopback")
	}
	addr := discardAddr(t)
	obs := clientObservers(t, 0)
	payload := make([]byte, 4<<10)
	runWrites(t, addr, obs, payload, 10) // warm up: pools, histograms
	perRun := func(writes int) float64 {
		return testing.AllocsPerRun(5, func() { runWrites(t, addr, obs, payload, writes) })
	}
	short, long := perRun(100), perRun(1100)
	perWrite := (long - short) / 1000
	t.Logf("allocations: %v per run of 100 writes, %v per run of 1,100: %.3f per write", short, long, perWrite)
	// Not exactly 0: the runtime may allocate now and then (timers, the
	// scheduler) while a longer run lasts. One allocation per write would
	// show as 1.
	if perWrite > 0.05 {
		t.Errorf("the write loop allocates %.3f times per write, want 0", perWrite)
	}
}

// BenchmarkScrape: one /metrics scrape of bp-server's registry (core,
// socket sampler with one pass done, host counters, Go and process
// collectors) with n connections open and registered. Metrics are
// aggregated per protocol, so the scrape should not grow with n.
// Target: under 50 ms at 10,000.
func BenchmarkScrape(b *testing.B) {
	for _, n := range []int{0, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			reg := metrics.NewRegistry()
			m := metrics.New(reg, "bench")
			sampler, err := metrics.NewSocketSampler(reg, metrics.SamplerOptions{Interval: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			if err := metrics.RegisterNetstat(reg); err != nil {
				b.Fatal(err)
			}
			for range n {
				o := m.Open(flow.ConnInfo{Protocol: flow.TCP, Reads: true})
				b.Cleanup(func() { o.Closed(nil) })
			}
			if n > 0 && sampler.Enabled() {
				openPairs(b, sampler, n, false)
			}
			sampler.Sample(time.Now())
			h := metrics.Handler(reg)
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("scrape: HTTP %d", w.Code)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/scrape")
		})
	}
}
