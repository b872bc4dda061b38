package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/guard"
	"github.com/go-backpressure/go-backpressure/internal/hop"
	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
	"github.com/go-backpressure/go-backpressure/pkg/relay"
)

// relayServer holds what the listeners share.
type relayServer struct {
	cfg relayConfig
	log *slog.Logger
}

// run relays until ctx ends, then stops accepting, closes every connection
// (hijacked WebSocket ones included) and returns. ready, if set, gets the
// bound addresses once listening.
func run(ctx context.Context, cfg relayConfig, log *slog.Logger, ready func(httpAddr, tcpAddr string)) error {
	reg := metrics.NewRegistry()
	m := metrics.New(reg, config.Version)
	m.SetStallThreshold(cfg.StallThreshold)
	rm := metrics.NewRelay(reg, int64(cfg.bufferSize()), int64(cfg.BufferMax))
	sampler, err := metrics.NewSocketSampler(reg, metrics.SamplerOptions{Interval: cfg.SampleInterval})
	if err != nil {
		return fmt.Errorf("socket metrics: %w", err)
	}
	if err := metrics.RegisterNetstat(reg); err != nil {
		return fmt.Errorf("host metrics: %w", err)
	}
	budget := relay.NewBudget(int64(cfg.BufferMax))
	s := &relayServer{cfg: cfg, log: log}
	// guard: limits, origin check, refusals counted (docs/SAFETY.md).
	h := &hop.Hop{Name: "bp-relay", Log: log, Guard: guard.New(cfg.Limits, m, log),
		Upgrader: flow.NewUpgrader(), HelloTimeout: cfg.HelloTimeout}
	defer h.Close()
	h.Upgrader.HelloTimeout = cfg.HelloTimeout
	h.Upgrader.MaxMessageSize = int64(cfg.WSMaxMessage)
	// The /ws handler checks the origin (the guard) before upgrading, so it
	// can count the refusal.
	h.Upgrader.CheckOrigin = func(*http.Request) bool { return true }
	newRelay := func(name string) *relay.Relay {
		return relay.New(relay.Config{
			Name: name, Buffer: int(cfg.Buffer), Budget: budget,
			StallThreshold: cfg.StallThreshold, LingerTimeout: cfg.LingerTimeout, DialTimeout: cfg.DialTimeout,
			Observer: flow.Multi(m, sampler), Buffers: rm,
		}, cfg.dialer())
	}

	connCtx := h.ConnContext(ctx)
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); sampler.Run(connCtx) }()
	defer func() { h.Close(); <-samplerDone }()

	tlsCfg, err := cfg.TLSServe.ServerConfig()
	if err != nil {
		return err
	}
	httpLn, tcpLn, err := hop.Listen(ctx, cfg.HTTPAddr, cfg.TCPAddr, cfg.downstreamOptions(), tlsCfg)
	if err != nil {
		return err
	}
	var metricsLn net.Listener // a separate metrics listener stays plain HTTP
	if cfg.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			httpLn.Close()
			if tcpLn != nil {
				tcpLn.Close()
			}
			return fmt.Errorf("metrics listener: %w", err)
		}
	}

	health := func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", h.WebSocket(ctx, s.relayWith(newRelay(viaName(cfg.Name, httpLn)))))
	mux.HandleFunc("/healthz", health)
	servers := []hop.Served{{Server: h.HTTPServer(ctx, mux), Listener: httpLn}}
	metricsAddr := httpLn.Addr().String()
	if metricsLn == nil {
		mux.Handle("/metrics", metrics.Handler(reg))
	} else {
		mm := http.NewServeMux()
		mm.Handle("/metrics", metrics.Handler(reg))
		mm.HandleFunc("/healthz", health)
		servers = append(servers, hop.Served{Server: h.HTTPServer(ctx, mm), Listener: metricsLn})
		metricsAddr = metricsLn.Addr().String()
	}
	for _, sv := range servers {
		cfg.Limits.HTTPServer(sv.Server)
	}
	tcpAddr := ""
	var handleTCP hop.Handler
	if tcpLn != nil {
		tcpAddr = tcpLn.Addr().String()
		handleTCP = s.relayWith(newRelay(viaName(cfg.Name, tcpLn)))
	}

	mode := "stream"
	if cfg.Buffer > 0 {
		mode = "bounded"
	}
	log.Info("bp-relay listening", "http", httpLn.Addr().String(), "tcp", tcpAddr, "metrics", metricsAddr,
		"upstream", cfg.Upstream, "buffer", config.Size(cfg.bufferSize()).String(), "mode", mode,
		"buffer_max", cfg.BufferMax.String(), "tls", tlsCfg != nil, "version", config.Version)
	if cfg.InsecureSkipVerify {
		log.Warn("not verifying upstream's TLS certificate (--insecure-skip-verify): anyone in the path can read and change the stream")
	}
	if ready != nil {
		ready(httpLn.Addr().String(), tcpAddr)
	}
	return h.Serve(ctx, servers, tcpLn, handleTCP)
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
	attrs := []any{"peer", peer, "protocol", c.Protocol()}
	kind := "none"
	if hello != nil {
		kind = "bp"
		if hello.Legacy {
			kind = "legacy"
		}
		attrs = append(attrs, "run", hello.RunID, "direction", hello.Direction, "via", hello.Via)
	}
	log := s.log.With(attrs...)
	log.Info("connection opened", "hello", kind)
	began := time.Now()
	st, err := relay.Serve(ctx, c, hello)
	fields := []any{"up_read_bytes", st.Up.Read, "up_written_bytes", st.Up.Written,
		"down_read_bytes", st.Down.Read, "down_written_bytes", st.Down.Written,
		"duration", time.Since(began).Round(time.Millisecond).String()}
	switch {
	case err == nil:
		log.Info("connection closed", fields...)
	case errors.Is(err, context.Canceled):
		log.Info("connection closed at shutdown", fields...)
	default:
		log.Warn("connection failed", append(fields, "reason", flow.ErrorReason(err), "err", err)...)
	}
}
