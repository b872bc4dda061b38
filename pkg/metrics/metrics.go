package metrics

import (
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/go-backpressure/go-backpressure/pkg/admission"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// WriteBlockedBuckets are the classic buckets of bp_write_blocked_seconds,
// from 100 µs to 60 s. A native histogram is exported alongside them.
var WriteBlockedBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
}

// Protocols are the values of the protocol label.
var Protocols = flow.Protocols[:]

// Metrics holds the core metrics of a binary and implements flow.Observer.
type Metrics struct {
	BytesWritten   *prometheus.CounterVec
	BytesRead      *prometheus.CounterVec
	WriteBlocked   *prometheus.HistogramVec
	Stalls         *prometheus.CounterVec
	Connections    *prometheus.GaugeVec
	Opened         *prometheus.CounterVec
	Errors         *prometheus.CounterVec
	Rejected       *prometheus.CounterVec
	BytesAcked     *prometheus.CounterVec
	BytesInPipe    *prometheus.GaugeVec
	ReadsPaused    *prometheus.GaugeVec
	PausedSeconds  *prometheus.CounterVec
	ThrottledSecs  *prometheus.CounterVec
	BuildInfo      *prometheus.GaugeVec
	StallThreshold prometheus.Gauge

	live *liveWrites
}

var _ flow.Observer = (*Metrics)(nil)

// New registers the core metrics on reg. version is exported in
// bp_build_info.
func New(reg prometheus.Registerer, version string) *Metrics {
	f := promauto.With(reg)
	proto := []string{"protocol"}
	m := &Metrics{
		BytesWritten: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_bytes_written_total",
			Help: "Payload bytes accepted by write calls.",
		}, proto),
		BytesRead: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_bytes_read_total",
			Help: "Payload bytes returned by read calls.",
		}, proto),
		WriteBlocked: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "bp_write_blocked_seconds",
			Help:                            "Time each payload write call spent blocked, until the transport accepted all of its bytes.",
			Buckets:                         WriteBlockedBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}, proto),
		Stalls: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_stalls_total",
			Help: "Payload write calls blocked for at least the stall threshold.",
		}, proto),
		Connections: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bp_connections",
			Help: "Open connections.",
		}, proto),
		Opened: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_connections_opened_total",
			Help: "Connections opened (accepted or dialled) since start.",
		}, proto),
		Errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_connection_errors_total",
			Help: "Connections that ended with an error, by reason.",
		}, []string{"protocol", "reason"}),
		Rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_connections_rejected_total",
			Help: "Connections a listener refused before serving them, by reason (limit, origin, handshake).",
		}, []string{"protocol", "reason"}),
		BytesAcked: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_bytes_acked_total",
			Help: "Payload bytes the peer acknowledged having read.",
		}, proto),
		BytesInPipe: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bp_bytes_in_pipe",
			Help: "Payload bytes written but not yet acknowledged by the reading peer: what sits in socket buffers and hops in between, summed over connections.",
		}, proto),
		ReadsPaused: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bp_reads_paused",
			Help: "Connections whose reader is deliberately paused right now (pause schedule).",
		}, proto),
		PausedSeconds: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_read_paused_seconds_total",
			Help: "Time readers spent deliberately paused by the pause schedule, summed over connections; added when each pause ends.",
		}, proto),
		ThrottledSecs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_read_throttled_seconds_total",
			Help: "Time readers waited for the read delay and the read rate limit, summed over connections.",
		}, proto),
		BuildInfo: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bp_build_info",
			Help: "Always 1; labels say which build of go-backpressure runs.",
		}, []string{"version", "goversion"}),
		StallThreshold: f.NewGauge(prometheus.GaugeOpts{
			Name: "bp_stall_threshold_seconds",
			Help: "Blocked time from which a write call counts as a stall (bp_stalls_total).",
		}),
	}
	m.live = newLiveWrites()
	reg.MustRegister(m.live)
	m.BuildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	for _, p := range Protocols {
		l := string(p)
		m.BytesWritten.WithLabelValues(l)
		m.BytesRead.WithLabelValues(l)
		m.WriteBlocked.WithLabelValues(l)
		m.Stalls.WithLabelValues(l)
		m.Connections.WithLabelValues(l)
		m.Opened.WithLabelValues(l)
		m.BytesAcked.WithLabelValues(l)
		m.BytesInPipe.WithLabelValues(l)
		m.ReadsPaused.WithLabelValues(l)
		m.PausedSeconds.WithLabelValues(l)
		m.ThrottledSecs.WithLabelValues(l)
		for _, r := range flow.ErrorReasons {
			m.Errors.WithLabelValues(l, r)
		}
		for _, r := range admission.RejectReasons {
			m.Rejected.WithLabelValues(l, r)
		}
	}
	return m
}

// Refused counts a connection that failed before it opened (a bad hello) in
// bp_connection_errors_total, by the error's reason.
func (m *Metrics) Refused(p flow.Protocol, err error) {
	m.Errors.WithLabelValues(string(p), flow.ErrorReason(err)).Inc()
}

// Reject counts a connection a listener refused before serving it; reason
// is one of admission.RejectReasons.
func (m *Metrics) Reject(p flow.Protocol, reason string) {
	m.Rejected.WithLabelValues(string(p), reason).Inc()
}

// NewRegistry returns a registry with the Go and process collectors, the
// base every binary starts from.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves the registry in the Prometheus exposition formats.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true})
}

// Open implements flow.Observer: it resolves the protocol's series once, so
// the write and read paths only add to counters.
func (m *Metrics) Open(info flow.ConnInfo) flow.ConnObserver {
	l := string(info.Protocol)
	c := &connMetrics{
		m:         m,
		protocol:  l,
		written:   m.BytesWritten.WithLabelValues(l),
		read:      m.BytesRead.WithLabelValues(l),
		blocked:   m.WriteBlocked.WithLabelValues(l),
		stalls:    m.Stalls.WithLabelValues(l),
		conns:     m.Connections.WithLabelValues(l),
		acked:     m.BytesAcked.WithLabelValues(l),
		inPipe:    m.BytesInPipe.WithLabelValues(l),
		paused:    m.ReadsPaused.WithLabelValues(l),
		pausedSec: m.PausedSeconds.WithLabelValues(l),
		throttled: m.ThrottledSecs.WithLabelValues(l),
	}
	c.live = m.live.proto(l)
	m.live.add(c)
	m.Opened.WithLabelValues(l).Inc()
	c.conns.Inc()
	return c
}

type connMetrics struct {
	m                                       *Metrics
	protocol                                string
	written, read, stalls, acked, pausedSec prometheus.Counter
	throttled                               prometheus.Counter
	blocked                                 prometheus.Observer
	conns, inPipe, paused                   prometheus.Gauge
	isPaused                                bool // only touched by the reader goroutine
	live                                    *protoWrites
	clock                                   flow.WriteClock // the write in progress, for liveWrites
}

func (c *connMetrics) Wrote(n int, blocked time.Duration, stalled bool) {
	c.writeDone(blocked)
	c.written.Add(float64(n))
	c.blocked.Observe(blocked.Seconds())
	if stalled {
		c.stalls.Inc()
	}
}

func (c *connMetrics) Read(n int)                { c.read.Add(float64(n)) }
func (c *connMetrics) Acked(delta int64)         { c.acked.Add(float64(delta)) }
func (c *connMetrics) InPipe(delta int64)        { c.inPipe.Add(float64(delta)) }
func (c *connMetrics) Throttled(d time.Duration) { c.throttled.Add(d.Seconds()) }

func (c *connMetrics) Paused(paused bool, stopped time.Duration) {
	if paused == c.isPaused {
		return
	}
	c.isPaused = paused
	if paused {
		c.paused.Inc()
		return
	}
	c.paused.Dec()
	c.pausedSec.Add(stopped.Seconds())
}

func (c *connMetrics) Closed(err error) {
	c.m.live.remove(c)
	c.conns.Dec()
	if c.isPaused {
		c.paused.Dec()
		c.isPaused = false
	}
	if err != nil {
		c.m.Errors.WithLabelValues(c.protocol, flow.ErrorReason(err)).Inc()
	}
}
