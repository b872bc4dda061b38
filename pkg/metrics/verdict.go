package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// VerdictFigures are the verdict's figures the metrics export (from
// pkg/verdict's Verdict, which this package does not import: metrics stays
// below the verdict). A nil figure is not known, and its series is left
// out rather than set to 0, so that sums and quantiles over a fleet count
// only the instances that have the figure.
type VerdictFigures struct {
	Outcome         string
	AbsorbedBytes   *int64
	BlockDelay      *float64
	ServerStoppedAt *float64
}

// Verdict exports the last verdict of a bp-client as bounded gauges, one
// set per process: Prometheus sums and ranks them across a fleet, the
// scrape target telling the instances apart (no instance label is made
// up here, so the series stay bounded whatever the fleet's size).
type Verdict struct {
	outcomes                 []string
	outcome                  *prometheus.GaugeVec
	absorbed, delay, stopped *prometheus.Desc

	mu  sync.Mutex
	now VerdictFigures
}

// NewVerdict registers the verdict's and the fleet's gauges on reg:
// outcomes is the verdict's fixed set of outcomes (each gets its series,
// 0 until a verdict says it), fleet the fleet run's name, instances its
// size.
func NewVerdict(reg prometheus.Registerer, outcomes []string, fleet string, instances int) *Verdict {
	v := &Verdict{
		outcomes: outcomes,
		outcome: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bp_verdict_outcome",
			Help: "1 for the outcome of the last verdict (blocked, absorbed, not_stalled, unknown), 0 for the others.",
		}, []string{"outcome"}),
		absorbed: prometheus.NewDesc("bp_verdict_absorbed_bytes",
			"Bytes the path absorbed per connection in the last verdict (its absorbed_bytes); absent until known.", nil, nil),
		delay: prometheus.NewDesc("bp_verdict_block_delay_seconds",
			"From the server stopping to this client's writes blocking, in the last verdict; absent until they blocked.", nil, nil),
		stopped: prometheus.NewDesc("bp_verdict_server_stopped_at_seconds",
			"When the server stopped reading, seconds from the run's start, in the last verdict; absent until it stopped.", nil, nil),
	}
	for _, o := range outcomes {
		v.outcome.WithLabelValues(o)
	}
	fleetInstances := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "bp_fleet_instances",
		Help: "The fleet's size (--instances): how many bp-clients run together.",
	})
	fleetInstances.Set(float64(instances))
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "bp_fleet_info",
		Help: "Always 1; its label names the fleet run (--fleet, empty when not named).",
	}, []string{"fleet"})
	info.WithLabelValues(fleet).Set(1)
	reg.MustRegister(v.outcome, v, fleetInstances, info)
	return v
}

// Describe is the figures' part of prometheus.Collector.
func (v *Verdict) Describe(ch chan<- *prometheus.Desc) {
	ch <- v.absorbed
	ch <- v.delay
	ch <- v.stopped
}

// Collect sends the figures that are known.
func (v *Verdict) Collect(ch chan<- prometheus.Metric) {
	v.mu.Lock()
	now := v.now
	v.mu.Unlock()
	if now.AbsorbedBytes != nil {
		ch <- prometheus.MustNewConstMetric(v.absorbed, prometheus.GaugeValue, float64(*now.AbsorbedBytes))
	}
	if now.BlockDelay != nil {
		ch <- prometheus.MustNewConstMetric(v.delay, prometheus.GaugeValue, *now.BlockDelay)
	}
	if now.ServerStoppedAt != nil {
		ch <- prometheus.MustNewConstMetric(v.stopped, prometheus.GaugeValue, *now.ServerStoppedAt)
	}
}

// Set exports a verdict's figures, replacing the last ones.
func (v *Verdict) Set(f VerdictFigures) {
	if v == nil {
		return
	}
	for _, o := range v.outcomes {
		val := 0.0
		if o == f.Outcome {
			val = 1
		}
		v.outcome.WithLabelValues(o).Set(val)
	}
	v.mu.Lock()
	v.now = f
	v.mu.Unlock()
}
