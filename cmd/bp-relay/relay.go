package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/hop"
	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
	"github.com/go-backpressure/go-backpressure/pkg/relay"
)

// relayServer holds what the listeners share.
type relayServer struct {
	cfg   relayConfig
	conns hop.ConnLogger
}

// run relays until ctx ends, then stops accepting, closes every connection
// (hijacked WebSocket ones included) and returns. ready, if set, gets the
// bound addresses once listening.
func run(ctx context.Context, cfg relayConfig, log *slog.Logger, ready func(httpAddr, tcpAddr string)) error {
	st, err := hop.Start(ctx, hop.Options{Name: "bp-relay", Log: log, Limits: cfg.Limits, TLS: cfg.TLSServe,
		HTTPAddr: cfg.HTTPAddr, TCPAddr: cfg.TCPAddr, Socket: cfg.downstreamOptions(),
		StallThreshold: cfg.StallThreshold, HelloTimeout: cfg.HelloTimeout, SampleInterval: cfg.SampleInterval,
		FDsPerConnection: cfg.fdsPerConnection(), ExtraHTTPListeners: extraHTTP(cfg)})
	if err != nil {
		return err
	}
	defer st.Close()
	s := &relayServer{cfg: cfg, conns: hop.NewConnLogger(log, true)}
	rm := metrics.NewRelay(st.Registry, int64(cfg.bufferSize()), int64(cfg.BufferMax))
	budget := relay.NewBudget(int64(cfg.BufferMax))
	obs := st.Observer()
	newRelay := func(name string) *relay.Relay {
		return relay.New(relay.Config{
			Name: name, Buffer: int(cfg.Buffer), Budget: budget,
			StallThreshold: cfg.StallThreshold, LingerTimeout: cfg.LingerTimeout, DialTimeout: cfg.DialTimeout,
			Observer: obs, Buffers: rm,
		}, cfg.dialer())
	}

	servers, metricsAddr, err := s.servers(ctx, st, s.relayWith(newRelay(viaName(cfg.Name, st.HTTPLn))))
	if err != nil {
		return err
	}
	var handleTCP hop.Handler
	if st.TCPLn != nil {
		handleTCP = s.relayWith(newRelay(viaName(cfg.Name, st.TCPLn)))
	}

	mode := "stream"
	if cfg.Buffer > 0 {
		mode = "bounded"
	}
	log.Info("bp-relay listening", "http", st.HTTPLn.Addr().String(), "tcp", st.TCPAddr(), "metrics", metricsAddr,
		"upstream", cfg.Upstream, "buffer", config.Size(cfg.bufferSize()).String(), "mode", mode,
		"buffer_max", cfg.BufferMax.String(), "tls", st.TLS != nil, "version", config.Version)
	if cfg.InsecureSkipVerify {
		log.Warn("not verifying upstream's TLS certificate (--insecure-skip-verify): anyone in the path can read and change the stream")
	}
	if ready != nil {
		ready(st.HTTPLn.Addr().String(), st.TCPAddr())
	}
	return st.Serve(ctx, servers, handleTCP)
}

// servers are the relay's HTTP servers: /ws (handleWS) and /healthz on
// the HTTP listener, /metrics there too or, with --metrics-addr, on a
// listener of its own that stays plain HTTP. metricsAddr is where
// /metrics is.
func (s *relayServer) servers(ctx context.Context, st *hop.Setup, handleWS hop.Handler) (servers []hop.Served, metricsAddr string, err error) {
	var metricsLn net.Listener
	if s.cfg.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", s.cfg.MetricsAddr); err != nil {
			return nil, "", fmt.Errorf("metrics listener: %w", err)
		}
	}
	mux := st.Mux(metricsLn == nil)
	mux.HandleFunc("/ws", st.Hop.WebSocket(ctx, handleWS))
	servers = []hop.Served{st.Served(ctx, mux, st.HTTPLn)}
	if metricsLn == nil {
		return servers, st.HTTPLn.Addr().String(), nil
	}
	servers = append(servers, st.Served(ctx, st.Mux(true), st.Retry(metricsLn)))
	return servers, metricsLn.Addr().String(), nil
}

// extraHTTP is how many HTTP listeners the relay opens besides hop's.
func extraHTTP(cfg relayConfig) int {
	if cfg.MetricsAddr != "" {
		return 1
	}
	return 0
}

// viaName is the hop's name in the hello's via: --name, or hostname:port
// of the listener, so two relays on one host stay apart.
func viaName(name string, ln net.Listener) string {
	if name != "" {
		return name
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "bp-relay"
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return net.JoinHostPort(host, port)
}

// relayWith returns the handler that forwards each downstream connection
// through relay.
func (s *relayServer) relayWith(relay *relay.Relay) hop.Handler {
	return func(ctx context.Context, hello *flow.Hello, c flow.Conn, peer string) {
		s.relay(ctx, relay, hello, c, peer)
	}
}

// relay forwards one downstream connection and logs how it went.
func (s *relayServer) relay(ctx context.Context, relay *relay.Relay, hello *flow.Hello, c flow.Conn, peer string) {
	log := s.conns.With(peer, c, hello)
	log.Opened()
	began := time.Now()
	st, err := relay.Serve(ctx, c, hello)
	log.Closed(err, "up_read_bytes", st.Up.Read, "up_written_bytes", st.Up.Written,
		"down_read_bytes", st.Down.Read, "down_written_bytes", st.Down.Written,
		"duration", time.Since(began).Round(time.Millisecond).String())
}
