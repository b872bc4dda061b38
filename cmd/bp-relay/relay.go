package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/guard"
	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
)

// shutdownGrace bounds the whole shutdown, inside Cloud Foundry's 10 s.
const shutdownGrace = 5 * time.Second

// relayServer holds what the listeners share.
type relayServer struct {
	cfg   relayConfig
	log   *slog.Logger
	upgr  *flow.Upgrader
	conns sync.WaitGroup
	// guard: limits, origin check, refusals counted (docs/SAFETY.md).
	guard *guard.Guard
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
	budget := flow.NewRelayBudget(int64(cfg.BufferMax))
	s := &relayServer{cfg: cfg, log: log, upgr: flow.NewUpgrader(), guard: guard.New(cfg.Limits, m, log)}
	s.upgr.HelloTimeout = cfg.HelloTimeout
	s.upgr.MaxMessageSize = int64(cfg.WSMaxMessage)
	// The /ws handler checks the origin (s.guard) before upgrading, so it
	// can count the refusal.
	s.upgr.CheckOrigin = func(*http.Request) bool { return true }
	newRelay := func(name string) *flow.Relay {
		return flow.NewRelay(flow.RelayConfig{
			Name: name, Buffer: int(cfg.Buffer), Budget: budget,
			StallThreshold: cfg.StallThreshold, LingerTimeout: cfg.LingerTimeout, DialTimeout: cfg.DialTimeout,
			Observer: flow.Multi(m, sampler), Buffers: rm,
		}, cfg.dialer())
	}

	// Connections get their own context: cancelled on shutdown, after the
	// listeners have stopped accepting.
	connCtx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConns()
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); sampler.Run(connCtx) }()
	defer func() { cancelConns(); <-samplerDone }()

	httpLn, err := flow.ListenTCP(ctx, cfg.HTTPAddr, cfg.downstreamOptions())
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	var tcpLn, metricsLn net.Listener
	closeAll := func() {
		for _, ln := range []net.Listener{httpLn, tcpLn, metricsLn} {
			if ln != nil {
				ln.Close()
			}
		}
	}
	if cfg.TCPAddr != "" {
		if tcpLn, err = flow.ListenTCP(ctx, cfg.TCPAddr, cfg.downstreamOptions()); err != nil {
			closeAll()
			return fmt.Errorf("tcp listener: %w", err)
		}
	}
	if cfg.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			closeAll()
			return fmt.Errorf("metrics listener: %w", err)
		}
	}
	tlsCfg, err := cfg.TLSServe.ServerConfig()
	if err != nil {
		closeAll()
		return err
	}
	if tlsCfg != nil { // a separate metrics listener stays plain HTTP
		httpLn = tls.NewListener(httpLn, tlsCfg)
		if tcpLn != nil {
			tcpLn = tls.NewListener(tcpLn, tlsCfg)
		}
	}

	health := func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }
	mux := http.NewServeMux()
	wsRelay := newRelay(viaName(cfg.Name, httpLn))
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if !s.guard.AdmitWebSocket(w, r) {
			return
		}
		defer s.guard.ReleaseWebSocket()
		hello, c, err := s.upgr.Accept(w, r)
		if err != nil {
			s.guard.Refused(flow.WebSocket, r.RemoteAddr, err)
			return
		}
		s.conns.Add(1)
		defer s.conns.Done()
		s.relay(connCtx, wsRelay, hello, c, r.RemoteAddr)
	})
	mux.HandleFunc("/healthz", health)
	var metricsSrv *http.Server
	if metricsLn == nil {
		mux.Handle("/metrics", metrics.Handler(reg))
	} else {
		mm := http.NewServeMux()
		mm.Handle("/metrics", metrics.Handler(reg))
		mm.HandleFunc("/healthz", health)
		metricsSrv = &http.Server{Handler: mm, ReadHeaderTimeout: 10 * time.Second}
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return connCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	cfg.Limits.HTTPServer(srv)
	if metricsSrv != nil {
		cfg.Limits.HTTPServer(metricsSrv)
	}

	errc := make(chan error, 3)
	go func() {
		if err := srv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	metricsAddr := httpLn.Addr().String()
	if metricsSrv != nil {
		metricsAddr = metricsLn.Addr().String()
		go func() {
			if err := metricsSrv.Serve(metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics: %w", err)
			}
		}()
	}
	tcpAddr := ""
	if tcpLn != nil {
		tcpAddr = tcpLn.Addr().String()
		tcpRelay := newRelay(viaName(cfg.Name, tcpLn))
		go func() {
			if err := s.acceptTCP(connCtx, tcpLn, tcpRelay); err != nil {
				errc <- err
			}
		}()
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

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info("bp-relay shutting down")
	// Order: stop accepting, then end every connection, then wait.
	if tcpLn != nil {
		tcpLn.Close()
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	srvDone := make(chan struct{})
	go func() { srv.Shutdown(shutCtx); close(srvDone) }()
	cancelConns()
	waited := make(chan struct{})
	go func() { s.conns.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-shutCtx.Done():
		log.Warn("connections still open at shutdown deadline")
	}
	<-srvDone
	if metricsSrv != nil {
		metricsSrv.Shutdown(shutCtx)
	}
	return runErr
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

func (s *relayServer) acceptTCP(ctx context.Context, ln net.Listener, relay *flow.Relay) error {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("tcp accept: %w", err)
		}
		if !s.guard.AdmitTCP(nc) {
			continue // closed at once, counted
		}
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			defer s.guard.ReleaseTCP()
			hello, c, err := guard.AcceptTCP(ctx, nc, s.cfg.HelloTimeout)
			if err != nil {
				s.guard.Refused(flow.TCP, nc.RemoteAddr().String(), err)
				nc.Close()
				return
			}
			s.relay(ctx, relay, hello, c, nc.RemoteAddr().String())
		}()
	}
}

// relay forwards one downstream connection and logs how it went.
func (s *relayServer) relay(ctx context.Context, relay *flow.Relay, hello *flow.Hello, c flow.Conn, peer string) {
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
