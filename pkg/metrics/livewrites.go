package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// liveWrites makes a write that is blocked right now visible at scrape time.
// bp_write_blocked_seconds (the histogram) and bp_stalls_total only learn of
// a write when it returns, so during a long pause they show nothing until the
// pause is over. This collector adds the time of every write still in
// progress, so rate(bp_writes_blocked_seconds_total) rises while the writes
// block, and bp_writes_stalled counts the ones blocked past the threshold.
type liveWrites struct {
	threshold atomic.Int64 // stall threshold in ns
	mu        sync.Mutex
	byProto   map[string]*protoWrites

	total   *prometheus.Desc
	stalled *prometheus.Desc
}

type protoWrites struct {
	doneNs   atomic.Int64 // blocked time of finished writes
	conns    map[*connMetrics]struct{}
	reported float64 // last value exported, so the counter never dips
}

func newLiveWrites() *liveWrites {
	lw := &liveWrites{
		byProto: map[string]*protoWrites{},
		total: prometheus.NewDesc("bp_writes_blocked_seconds_total",
			"Time payload write calls spent blocked, summed over connections, including calls still blocked at scrape time (unlike bp_write_blocked_seconds, which learns of a write when it returns).",
			[]string{"protocol"}, nil),
		stalled: prometheus.NewDesc("bp_writes_stalled",
			"Payload write calls blocked right now for at least the stall threshold.",
			[]string{"protocol"}, nil),
	}
	lw.threshold.Store(int64(flow.DefaultStallThreshold))
	for _, p := range Protocols {
		lw.byProto[string(p)] = &protoWrites{conns: map[*connMetrics]struct{}{}}
	}
	return lw
}

func (lw *liveWrites) proto(p string) *protoWrites {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	pw, ok := lw.byProto[p]
	if !ok {
		pw = &protoWrites{conns: map[*connMetrics]struct{}{}}
		lw.byProto[p] = pw
	}
	return pw
}

func (lw *liveWrites) add(c *connMetrics) {
	lw.mu.Lock()
	lw.byProto[c.protocol].conns[c] = struct{}{}
	lw.mu.Unlock()
}

func (lw *liveWrites) remove(c *connMetrics) {
	lw.mu.Lock()
	delete(lw.byProto[c.protocol].conns, c)
	lw.mu.Unlock()
	// A write cut off by the close never reported: keep its time.
	if d, ok := c.clock.Elapsed(time.Now()); ok {
		c.live.doneNs.Add(int64(d))
		c.clock.Stop()
	}
}

func (lw *liveWrites) Describe(ch chan<- *prometheus.Desc) {
	ch <- lw.total
	ch <- lw.stalled
}

func (lw *liveWrites) Collect(ch chan<- prometheus.Metric) {
	threshold := time.Duration(lw.threshold.Load())
	now := time.Now()
	lw.mu.Lock()
	defer lw.mu.Unlock()
	for proto, pw := range lw.byProto {
		total := time.Duration(pw.doneNs.Load())
		stalled := 0
		for c := range pw.conns {
			d, ok := c.clock.Elapsed(now)
			if !ok {
				continue
			}
			total += d
			if d >= threshold {
				stalled++
			}
		}
		// A write's own measure of its blocked time can come out a hair
		// shorter than what a scrape saw while it was in progress; a counter
		// must never go down, so the export never does.
		pw.reported = max(pw.reported, total.Seconds())
		ch <- prometheus.MustNewConstMetric(lw.total, prometheus.CounterValue, pw.reported, proto)
		ch <- prometheus.MustNewConstMetric(lw.stalled, prometheus.GaugeValue, float64(stalled), proto)
	}
}

// SetStallThreshold sets the threshold for bp_stalls_total's gauge twin
// bp_writes_stalled, and exports it as bp_stall_threshold_seconds.
func (m *Metrics) SetStallThreshold(d time.Duration) {
	m.StallThreshold.Set(d.Seconds())
	m.live.threshold.Store(int64(d))
}

// WriteStarting implements flow.WriteStartObserver.
func (c *connMetrics) WriteStarting(began time.Time) { c.clock.Start(began) }

// writeDone ends the write in progress and books its blocked time.
func (c *connMetrics) writeDone(blocked time.Duration) {
	c.clock.Stop()
	c.live.doneNs.Add(int64(blocked))
}

var _ flow.WriteStartObserver = (*connMetrics)(nil)
