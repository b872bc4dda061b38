package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// SamplerOptions configure the socket sampler NewSocketSampler builds
// (sockstat.SamplerOptions; the alias lets a binary set sampling and its
// metrics up in one call).
type SamplerOptions = sockstat.SamplerOptions

// NewSocketSampler returns a socket sampler (pkg/sockstat) whose figures
// reg exports as the bp_socket_* metrics, and the stream layer's of
// multiplexed connections as the bp_stream_* ones; call its Run to start
// sampling, and add it to the binary's observers so that connections
// register.
func NewSocketSampler(reg prometheus.Registerer, opts SamplerOptions) (*sockstat.Sampler, error) {
	s := sockstat.NewSampler(opts)
	if err := reg.Register(NewSocketCollector(s)); err != nil {
		return nil, err
	}
	if err := reg.Register(NewStreamCollector(s)); err != nil {
		return nil, err
	}
	return s, nil
}

// SocketCollector adapts a sockstat.Sampler as a prometheus.Collector:
// at every scrape it exports the last pass's gauges and the counters so
// far, per protocol, with no per-connection labels. A metric whose kernel
// field the running kernel lacks is not exported at all.
type SocketCollector struct {
	sampler *sockstat.Sampler
	metrics []socketMetric
}

var _ prometheus.Collector = (*SocketCollector)(nil)

// NewSocketCollector returns the collector of s's figures.
func NewSocketCollector(s *sockstat.Sampler) *SocketCollector {
	return &SocketCollector{sampler: s, metrics: socketMetrics("protocol")}
}

// socketMetric is one exported metric: its description, the kernel fields
// it needs, and how to read it from a protocol's stats (ok false: no value
// now, such as a minimum over no connections).
type socketMetric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	needs sockstat.Fields
	value func(st *sockstat.ProtocolStats) (v float64, ok bool)
}

// socketMetrics are the bp_socket_* metrics, one place for their names and
// help, with label (protocol for a binary's own connections, side for a
// hop's sockets seen by bp-sockets).
func socketMetrics(label string) []socketMetric {
	proto := []string{label}
	gauge := func(name, help string, needs sockstat.Fields, v func(*sockstat.ProtocolStats) (float64, bool)) socketMetric {
		return socketMetric{prometheus.NewDesc(name, help, proto, nil), prometheus.GaugeValue, needs, v}
	}
	counter := func(name, help string, needs sockstat.Fields, v func(*sockstat.ProtocolStats) (float64, bool)) socketMetric {
		return socketMetric{prometheus.NewDesc(name, help, proto, nil), prometheus.CounterValue, needs, v}
	}
	always := func(f func(*sockstat.ProtocolStats) float64) func(*sockstat.ProtocolStats) (float64, bool) {
		return func(st *sockstat.ProtocolStats) (float64, bool) { return f(st), true }
	}
	return []socketMetric{
		gauge("bp_socket_sampled_connections",
			"Connections whose kernel socket statistics were read in the last sampling pass.",
			sockstat.FieldBasic, always(func(st *sockstat.ProtocolStats) float64 { return float64(st.Sampled) })),
		// Writer side.
		gauge("bp_socket_send_queue_bytes",
			"Bytes in the send queues of writing connections (SIOCOUTQ: written, not yet acknowledged by the peer's kernel), summed.",
			sockstat.FieldSendQueue, always(func(st *sockstat.ProtocolStats) float64 { return float64(st.SendQueue) })),
		gauge("bp_socket_unsent_bytes",
			"Bytes in the send queues of writing connections not yet sent at all (SIOCOUTQNSD), summed.",
			sockstat.FieldSendQueueNotSent, always(func(st *sockstat.ProtocolStats) float64 { return float64(st.Unsent) })),
		gauge("bp_socket_peer_window_min_bytes",
			"Smallest receive window the peer advertised (tcpi_snd_wnd) across writing connections; absent while none is sampled.",
			sockstat.FieldPeerWindow, func(st *sockstat.ProtocolStats) (float64, bool) {
				return float64(st.PeerWindowMin), st.HasPeerWindowMin
			}),
		gauge("bp_socket_peer_window_zero_connections",
			"Writing connections whose peer advertises a zero receive window right now.",
			sockstat.FieldPeerWindow, always(func(st *sockstat.ProtocolStats) float64 { return float64(st.PeerWindowZeroConns) })),
		counter("bp_socket_peer_window_zero_seconds_total",
			"Time writing connections saw a zero peer window, summed over connections, measured at each sample.",
			sockstat.FieldPeerWindow, always(func(st *sockstat.ProtocolStats) float64 { return st.PeerWindowZero.Seconds() })),
		counter("bp_socket_busy_seconds_total",
			"Time writing connections had data to send (tcpi_busy_time), summed over connections.",
			sockstat.FieldLimited, always(func(st *sockstat.ProtocolStats) float64 { return st.Busy.Seconds() })),
		counter("bp_socket_rwnd_limited_seconds_total",
			"Time writing connections were stopped by the peer's receive window (tcpi_rwnd_limited), summed over connections.",
			sockstat.FieldLimited, always(func(st *sockstat.ProtocolStats) float64 { return st.RwndLimited.Seconds() })),
		counter("bp_socket_sndbuf_limited_seconds_total",
			"Time writing connections were stopped by their own full send buffer (tcpi_sndbuf_limited), summed over connections.",
			sockstat.FieldLimited, always(func(st *sockstat.ProtocolStats) float64 { return st.SndbufLimited.Seconds() })),
		gauge("bp_socket_zero_window_probes",
			"Unanswered zero-window (or keepalive) probes outstanding on writing connections (tcpi_probes), summed.",
			sockstat.FieldBasic, always(func(st *sockstat.ProtocolStats) float64 { return float64(st.Probes) })),
		// Reader side.
		gauge("bp_socket_recv_queue_bytes",
			"Bytes received and not yet read by the program on reading connections (SIOCINQ), summed.",
			sockstat.FieldRecvQueue, always(func(st *sockstat.ProtocolStats) float64 { return float64(st.RecvQueue) })),
		gauge("bp_socket_own_window_min_bytes",
			"Smallest receive window this side advertises (tcpi_rcv_wnd) across reading connections; absent while none is sampled.",
			sockstat.FieldOwnWindow, func(st *sockstat.ProtocolStats) (float64, bool) {
				return float64(st.OwnWindowMin), st.HasOwnWindowMin
			}),
		gauge("bp_socket_own_window_zero_connections",
			"Reading connections advertising a zero receive window right now.",
			sockstat.FieldOwnWindow, always(func(st *sockstat.ProtocolStats) float64 { return float64(st.OwnWindowZeroConns) })),
		counter("bp_socket_own_window_zero_seconds_total",
			"Time reading connections advertised a zero receive window, summed over connections, measured at each sample.",
			sockstat.FieldOwnWindow, always(func(st *sockstat.ProtocolStats) float64 { return st.OwnWindowZero.Seconds() })),
	}
}

// Describe implements prometheus.Collector.
func (c *SocketCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector: the last pass's gauges and the
// counters so far, for every protocol, leaving out what the kernel lacks.
func (c *SocketCollector) Collect(ch chan<- prometheus.Metric) {
	if !c.sampler.Enabled() {
		return
	}
	stats, fields := c.sampler.Stats()
	collectSocketMetrics(ch, c.metrics, stats[:], fields, func(p int) string { return string(flow.Protocols[p]) })
}

// collectSocketMetrics sends each metric's value for every stats entry,
// labelled label(i), leaving out what the kernel lacks (fields) and
// values that do not exist now.
func collectSocketMetrics(ch chan<- prometheus.Metric, metrics []socketMetric, stats []sockstat.ProtocolStats, fields sockstat.Fields, label func(i int) string) {
	for _, m := range metrics {
		if fields&m.needs != m.needs {
			continue
		}
		for i := range stats {
			if v, ok := m.value(&stats[i]); ok {
				ch <- prometheus.MustNewConstMetric(m.desc, m.typ, v, label(i))
			}
		}
	}
}
