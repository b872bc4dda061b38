package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// HostSocketCollector adapts a sockstat.HostSampler (bp-sockets) as a
// prometheus.Collector: the bp_socket_* metrics of a binary's own
// connections, same names, help and meaning, with the label side
// (downstream, upstream) instead of protocol. A hop's raw TCP sockets say
// nothing of the protocol above them, so there is no protocol label.
// While the last pass failed (or before the first) it exports none of
// them: what could not be read is absent, not zero.
type HostSocketCollector struct {
	sampler *sockstat.HostSampler
	metrics []socketMetric
}

var _ prometheus.Collector = (*HostSocketCollector)(nil)

// NewHostSocketCollector returns the collector of s's figures.
func NewHostSocketCollector(s *sockstat.HostSampler) *HostSocketCollector {
	return &HostSocketCollector{sampler: s, metrics: socketMetrics("side")}
}

// Describe implements prometheus.Collector.
func (c *HostSocketCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector: the last pass's gauges and the
// counters so far, per side.
func (c *HostSocketCollector) Collect(ch chan<- prometheus.Metric) {
	stats, fields, err := c.sampler.Stats()
	if err != nil {
		return
	}
	collectSocketMetrics(ch, c.metrics, stats[:], fields, func(i int) string { return sockstat.Sides[i] })
}
