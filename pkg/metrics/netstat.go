package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// NetstatCollector exports the host-wide TcpExt zero-window counters of
// /proc/net/netstat, read at every scrape. They count window advertisements
// this host sends, so they move on the reading side: a host whose readers
// fall behind shows TCPToZeroWindowAdv growing. A counter the kernel does not
// have is left out, never exported as zero.
type NetstatCollector struct {
	read func() (sockstat.ZeroWindowCounters, error)
}

var _ prometheus.Collector = NetstatCollector{}

// netstatMetrics are the exported counters, in the order of
// sockstat.ZeroWindowCounters.
var netstatMetrics = []struct {
	desc  *prometheus.Desc
	has   sockstat.ZeroWindowFields
	value func(c *sockstat.ZeroWindowCounters) uint64
}{
	{
		prometheus.NewDesc("bp_host_tcp_to_zero_window_adv_total",
			"Times a receive window this host advertised went from open to zero, over all its TCP sockets (TcpExt TCPToZeroWindowAdv).", nil, nil),
		sockstat.HasToZeroWindowAdv, func(c *sockstat.ZeroWindowCounters) uint64 { return c.ToZeroWindowAdv },
	},
	{
		prometheus.NewDesc("bp_host_tcp_from_zero_window_adv_total",
			"Times a receive window this host advertised reopened from zero, over all its TCP sockets (TcpExt TCPFromZeroWindowAdv).", nil, nil),
		sockstat.HasFromZeroWindowAdv, func(c *sockstat.ZeroWindowCounters) uint64 { return c.FromZeroWindowAdv },
	},
	{
		prometheus.NewDesc("bp_host_tcp_want_zero_window_adv_total",
			"Times a receive buffer called for a zero window, over all this host's TCP sockets (TcpExt TCPWantZeroWindowAdv).", nil, nil),
		sockstat.HasWantZeroWindowAdv, func(c *sockstat.ZeroWindowCounters) uint64 { return c.WantZeroWindowAdv },
	},
	{
		prometheus.NewDesc("bp_host_tcp_zero_window_drop_total",
			"Segments this host dropped because they arrived while its window was zero (TcpExt TCPZeroWindowDrop).", nil, nil),
		sockstat.HasZeroWindowDrop, func(c *sockstat.ZeroWindowCounters) uint64 { return c.ZeroWindowDrop },
	},
}

// NewNetstatCollector returns a collector reading /proc/net/netstat (on
// systems without it, the collector exports nothing).
func NewNetstatCollector() NetstatCollector {
	return NetstatCollector{read: sockstat.ReadNetstat}
}

// RegisterNetstat registers a NetstatCollector on reg.
func RegisterNetstat(reg prometheus.Registerer) error {
	return reg.Register(NewNetstatCollector())
}

// Describe implements prometheus.Collector.
func (n NetstatCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range netstatMetrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector. A failed read exports nothing
// rather than failing the whole scrape: the socket and core metrics matter
// more than these.
func (n NetstatCollector) Collect(ch chan<- prometheus.Metric) {
	c, err := n.read()
	if err != nil {
		return
	}
	for _, m := range netstatMetrics {
		if c.Present&m.has != 0 {
			ch <- prometheus.MustNewConstMetric(m.desc, prometheus.CounterValue, float64(m.value(&c)))
		}
	}
}
