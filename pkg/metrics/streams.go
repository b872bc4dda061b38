package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// StreamCollector adapts the stream layer of a sockstat.Sampler as a
// prometheus.Collector: at every scrape the last pass's gauges and the
// counters so far, per protocol, of the streams of multiplexed
// connections (HTTP/2, gRPC). The figures are polled from each stream's
// flow.StreamConn by the sampler at its passes and at close, so pkg/flow
// knows nothing of Prometheus. A protocol that carries no streams (tcp,
// websocket) has no series unless a stream of it was polled.
type StreamCollector struct {
	sampler *sockstat.Sampler
	blocked, sendWindow, recvWindow, updates,
	closed, sampled *prometheus.Desc
}

var _ prometheus.Collector = (*StreamCollector)(nil)

// NewStreamCollector returns the collector of s's stream layer.
func NewStreamCollector(s *sockstat.Sampler) *StreamCollector {
	proto := []string{"protocol"}
	layer := []string{"protocol", "layer"}
	return &StreamCollector{
		sampler: s,
		sampled: prometheus.NewDesc("bp_stream_sampled_streams",
			"Streams of multiplexed connections (HTTP/2, gRPC) whose flow-control state was polled in the last pass.", proto, nil),
		blocked: prometheus.NewDesc("bp_stream_blocked_seconds_total",
			"Time stream writes waited, by the layer that held them (stream: the stream's send window at zero; connection: the connection's; tcp: neither, so the socket), summed over streams.", layer, nil),
		sendWindow: prometheus.NewDesc("bp_stream_send_window_min_bytes",
			"Smallest send window the peer allows (layer stream: a stream's; connection: a connection's) across open streams; absent while no stream's transport tells.", layer, nil),
		recvWindow: prometheus.NewDesc("bp_stream_recv_window_min_bytes",
			"Smallest receive window this side advertises (layer stream or connection) across open streams; absent while no stream's transport tells.", layer, nil),
		updates: prometheus.NewDesc("bp_stream_window_updates_total",
			"WINDOW_UPDATE frames, by direction (received from the peer, sent to it), stream and connection level, each connection's counted once.", []string{"protocol", "direction"}, nil),
		closed: prometheus.NewDesc("bp_stream_window_closed_streams",
			"Open streams whose send stream window is zero right now: they may send nothing until the peer's WINDOW_UPDATE.", proto, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *StreamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sampled, c.blocked, c.sendWindow, c.recvWindow, c.updates, c.closed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *StreamCollector) Collect(ch chan<- prometheus.Metric) {
	if !c.sampler.StreamsEnabled() {
		return
	}
	for i, st := range c.sampler.StreamStats() {
		p := flow.Protocols[i]
		if !(flow.Target{Protocol: p}).Multiplexed() && st.Streams == 0 && st.StreamCounters == (sockstat.StreamCounters{}) {
			continue // tcp, websocket: no stream was ever polled
		}
		c.collect(ch, string(p), &st)
	}
}

// collect sends one protocol's series.
func (c *StreamCollector) collect(ch chan<- prometheus.Metric, p string, st *sockstat.StreamProtocolStats) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{p}, labels...)...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{p}, labels...)...)
	}
	window := func(d *prometheus.Desc, v int64, layer string) {
		if v >= 0 { // -1: no open stream's transport tells
			gauge(d, float64(v), layer)
		}
	}
	gauge(c.sampled, float64(st.Streams))
	counter(c.blocked, st.BlockedStream.Seconds(), "stream")
	counter(c.blocked, st.BlockedConn.Seconds(), "connection")
	counter(c.blocked, st.BlockedTCP.Seconds(), "tcp")
	window(c.sendWindow, st.SendStreamWindowMin, "stream")
	window(c.sendWindow, st.SendConnWindowMin, "connection")
	window(c.recvWindow, st.RecvStreamWindowMin, "stream")
	window(c.recvWindow, st.RecvConnWindowMin, "connection")
	counter(c.updates, float64(st.WindowUpdatesReceived), "received")
	counter(c.updates, float64(st.WindowUpdatesSent), "sent")
	gauge(c.closed, float64(st.SendWindowClosedStreams))
}
