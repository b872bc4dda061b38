package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/relay"
)

// RelayDirections are the values of the relay metrics' direction label:
// up is the buffer from downstream to upstream, down the other one.
var RelayDirections = []flow.Direction{flow.Up, flow.Down}

// RelaySides are the values of the side label.
var RelaySides = []relay.Side{relay.Downstream, relay.Upstream}

// Relay holds bp-relay's own metrics (its buffers) and implements
// relay.Observer. Its two connections per relayed stream are counted
// by the core Metrics like any other connection.
type Relay struct {
	BufferedBytes *prometheus.GaugeVec
	CapacityBytes *prometheus.GaugeVec
	BufferMax     prometheus.Gauge
	BufferSize    prometheus.Gauge
	ReadersPaused *prometheus.GaugeVec
	PausedTotal   *prometheus.CounterVec
	ResumedTotal  *prometheus.CounterVec
	PausedSeconds *prometheus.CounterVec
	// The budget (--buffer-max): readers waiting for room in it for bytes
	// they have read, so a cap too small for the traffic shows apart from
	// per-connection buffers that are full.
	BudgetWaitingNow  *prometheus.GaugeVec
	BudgetWaitsTotal  *prometheus.CounterVec
	BudgetWaitSeconds *prometheus.CounterVec
	FailuresTotal     *prometheus.CounterVec
}

var _ relay.Observer = (*Relay)(nil)

// NewRelay registers the relay metrics on reg. bufferSize is the
// per-connection, per-direction buffer and bufferMax the process-wide cap.
func NewRelay(reg prometheus.Registerer, bufferSize, bufferMax int64) *Relay {
	f := promauto.With(reg)
	dir := []string{"direction"}
	r := &Relay{
		BufferedBytes: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bp_relay_buffered_bytes",
			Help: "Payload bytes the relay holds in its buffers now (read, not yet accepted upstream or downstream), summed over connections.",
		}, dir),
		CapacityBytes: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bp_relay_buffer_capacity_bytes",
			Help: "Bytes the open connections' buffers may hold, summed over connections.",
		}, dir),
		BufferMax: f.NewGauge(prometheus.GaugeOpts{
			Name: "bp_relay_buffer_max_bytes",
			Help: "Hard cap on the bytes all buffers of this relay hold together (--buffer-max).",
		}),
		BufferSize: f.NewGauge(prometheus.GaugeOpts{
			Name: "bp_relay_buffer_size_bytes",
			Help: "Buffer of each connection and direction (--buffer; stream mode shows its fixed size).",
		}),
		ReadersPaused: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bp_relay_reading_paused",
			Help: "Connections whose relay reader is stopped right now because its buffer (or the cap) is full.",
		}, dir),
		PausedTotal: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_relay_read_paused_total",
			Help: "Times a relay reader stopped reading because its buffer (or the cap) was full.",
		}, dir),
		ResumedTotal: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_relay_read_resumed_total",
			Help: "Times a relay reader resumed reading after its buffer had room again.",
		}, dir),
		PausedSeconds: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_relay_read_paused_seconds_total",
			Help: "Time relay readers spent stopped because their buffer was full, summed over connections; added when each pause ends.",
		}, dir),
		BudgetWaitingNow: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bp_relay_budget_waiting",
			Help: "Relay readers waiting right now for room in the shared cap (--buffer-max) for bytes they have read.",
		}, dir),
		BudgetWaitsTotal: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_relay_budget_waits_total",
			Help: "Times a relay reader had to wait for room in the shared cap (--buffer-max) before it could pass on bytes it had read.",
		}, dir),
		BudgetWaitSeconds: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_relay_budget_wait_seconds_total",
			Help: "Time relay readers spent waiting for room in the shared cap (--buffer-max), summed over connections; added when each wait ends.",
		}, dir),
		FailuresTotal: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_relay_failures_total",
			Help: "Relayed connections that ended with an error, once each, by the side whose connection failed.",
		}, []string{"side"}),
	}
	r.BufferSize.Set(float64(bufferSize))
	r.BufferMax.Set(float64(bufferMax))
	for _, d := range RelayDirections {
		l := string(d)
		r.BufferedBytes.WithLabelValues(l)
		r.CapacityBytes.WithLabelValues(l)
		r.ReadersPaused.WithLabelValues(l)
		r.PausedTotal.WithLabelValues(l)
		r.ResumedTotal.WithLabelValues(l)
		r.PausedSeconds.WithLabelValues(l)
		r.BudgetWaitingNow.WithLabelValues(l)
		r.BudgetWaitsTotal.WithLabelValues(l)
		r.BudgetWaitSeconds.WithLabelValues(l)
	}
	for _, s := range RelaySides {
		r.FailuresTotal.WithLabelValues(string(s))
	}
	return r
}

// Buffered implements relay.Observer.
func (r *Relay) Buffered(d flow.Direction, delta int64) {
	r.BufferedBytes.WithLabelValues(string(d)).Add(float64(delta))
}

// Capacity implements relay.Observer.
func (r *Relay) Capacity(d flow.Direction, delta int64) {
	r.CapacityBytes.WithLabelValues(string(d)).Add(float64(delta))
}

// ReadingPaused implements relay.Observer.
func (r *Relay) ReadingPaused(d flow.Direction, paused bool, stopped time.Duration) {
	l := string(d)
	if paused {
		r.PausedTotal.WithLabelValues(l).Inc()
		r.ReadersPaused.WithLabelValues(l).Inc()
		return
	}
	r.ResumedTotal.WithLabelValues(l).Inc()
	r.ReadersPaused.WithLabelValues(l).Dec()
	r.PausedSeconds.WithLabelValues(l).Add(stopped.Seconds())
}

// BudgetWaiting implements relay.Observer.
func (r *Relay) BudgetWaiting(d flow.Direction, waiting bool, waited time.Duration) {
	l := string(d)
	if waiting {
		r.BudgetWaitsTotal.WithLabelValues(l).Inc()
		r.BudgetWaitingNow.WithLabelValues(l).Inc()
		return
	}
	r.BudgetWaitingNow.WithLabelValues(l).Dec()
	r.BudgetWaitSeconds.WithLabelValues(l).Add(waited.Seconds())
}

// Failed implements relay.Observer.
func (r *Relay) Failed(s relay.Side, _ error) {
	r.FailuresTotal.WithLabelValues(string(s)).Inc()
}
