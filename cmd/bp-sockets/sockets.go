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

	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// shutdownGrace bounds the HTTP shutdown.
const shutdownGrace = 5 * time.Second

// run samples and serves /metrics until ctx ends. ready, if set, gets the
// bound metrics address once listening.
func run(ctx context.Context, cfg socketsConfig, log *slog.Logger, ready func(metricsAddr string)) error {
	ports, _ := cfg.ports() // checked by Validate
	sampler := sockstat.NewHostSampler(sockstat.HostSamplerOptions{
		Interval: cfg.SampleInterval, Ports: ports, OnPass: passLogger(log),
	})
	reg := metrics.NewRegistry()
	if err := reg.Register(metrics.NewHostSocketCollector(sampler)); err != nil {
		return fmt.Errorf("socket metrics: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(reg))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	log.Info("bp-sockets watching", "downstream_ports", ports.Downstream, "upstream_ports", ports.Upstream,
		"network_namespace", netnsName(), "sample_interval", cfg.SampleInterval.String(),
		"metrics", ln.Addr().String(), "version", config.Version)
	if !sockstat.Supported() {
		log.Warn("socket statistics are not available on this system: no bp_socket_* metrics", "err", sockstat.ErrUnsupported)
	}
	sampleCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sampled := make(chan struct{})
	go func() { defer close(sampled); sampler.Run(sampleCtx) }()
	defer func() { cancel(); <-sampled }()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("http %s: %w", ln.Addr(), err)
	}
	log.Info("bp-sockets shutting down")
	shutCtx, done := context.WithTimeout(context.Background(), shutdownGrace)
	defer done()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// passLogger logs the first pass and every change: a dump that fails
// (why, and that the metrics are absent until it works), a recovery, and
// the fields this kernel does not give.
func passLogger(log *slog.Logger) func(sockstat.PassState) {
	return func(st sockstat.PassState) {
		if st.Err != nil {
			log.Warn("cannot read the sockets: bp_socket_* metrics absent until a pass works", "err", st.Err)
			return
		}
		log.Info("sockets read", "sockets", st.Sockets, "hop_sockets", st.Hop)
		if missing := sockstat.AllFields &^ st.Fields; missing != 0 {
			log.Warn("this kernel's sock_diag does not provide some statistics: their metrics are absent", "missing", missing.String())
		}
	}
}

// netnsName is the network namespace this process reads, as
// /proc/self/ns/net names it ("net:[4026531840]"), for the start log.
func netnsName() string {
	name, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return "unknown"
	}
	return name
}
