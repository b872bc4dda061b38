package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// Client holds the metrics only bp-client exports, besides the core ones.
type Client struct {
	// Reconnects counts attempts to connect again after a connection broke
	// or could not be made (--reconnect).
	Reconnects *prometheus.CounterVec
}

// NewClient registers bp-client's own metrics on reg.
func NewClient(reg prometheus.Registerer) *Client {
	c := &Client{
		Reconnects: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "bp_reconnects_total",
			Help: "Attempts to connect again after a connection broke or could not be made (--reconnect).",
		}, []string{"protocol"}),
	}
	for _, p := range Protocols {
		c.Reconnects.WithLabelValues(string(p))
	}
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{Name: "bp_stream_queued_bytes",
		Help:        "Bytes the client's gRPC streams' Send calls took (counted as written) that grpc-go has not yet sent as DATA: grpc-go's send buffers, which no socket statistic sees.",
		ConstLabels: prometheus.Labels{"protocol": string(flow.GRPC)}}, func() float64 { return float64(flow.GRPCQueuedBytes()) })
	return c
}

// Reconnected counts one attempt to connect again over protocol p.
func (c *Client) Reconnected(p flow.Protocol) { c.Reconnects.WithLabelValues(string(p)).Inc() }
