package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/guard"
	"github.com/go-backpressure/go-backpressure/internal/hop"
	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
	"github.com/go-backpressure/go-backpressure/web"
)

// server holds what the listeners share.
type server struct {
	cfg     serverConfig
	log     *slog.Logger
	obs     flow.Observer
	payload *flow.PayloadPool // download payloads, within --payload-memory
	windows windowLogs        // logs each connection's advertised window closing and reopening
}

// run serves until ctx ends, then stops accepting, closes every connection
// (hijacked WebSocket ones included) and returns. ready, if set, gets the
// bound addresses once listening.
func run(ctx context.Context, cfg serverConfig, log *slog.Logger, ready func(httpAddr, tcpAddr string)) error {
	reg := metrics.NewRegistry()
	m := metrics.New(reg, config.Version)
	m.SetStallThreshold(cfg.StallThreshold)
	s := &server{cfg: cfg, log: log, payload: flow.NewPayloadPool(int64(cfg.PayloadMemory))}
	sampler, err := metrics.NewSocketSampler(reg, metrics.SamplerOptions{Interval: cfg.SampleInterval, OnWindow: s.windows.event})
	if err != nil {
		return fmt.Errorf("socket metrics: %w", err)
	}
	if err := metrics.RegisterNetstat(reg); err != nil {
		return fmt.Errorf("host metrics: %w", err)
	}
	s.obs = flow.Multi(m, sampler)
	if missing := sockstat.MissingDescription(); missing != "" {
		log.Info("kernel socket statistics incomplete: their metrics are left out", "missing", missing)
	}
	// guard: limits, origin check, refusals counted (docs/SAFETY.md).
	h := &hop.Hop{Name: "bp-server", Log: log, Guard: guard.New(cfg.Limits, m, log),
		Upgrader: flow.NewUpgrader(), HelloTimeout: cfg.HelloTimeout}
	defer h.Close()
	h.Upgrader.HelloTimeout = cfg.HelloTimeout
	h.Upgrader.MaxMessageSize = int64(cfg.WSMaxMessage)
	// The /ws handler checks the origin (the guard) before upgrading, so it
	// can count the refusal.
	h.Upgrader.CheckOrigin = func(*http.Request) bool { return true }

	connCtx := h.ConnContext(ctx)
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); sampler.Run(connCtx) }()
	defer func() { h.Close(); <-samplerDone }()

	tlsCfg, err := cfg.TLSServe.ServerConfig()
	if err != nil {
		return err
	}
	httpLn, tcpLn, err := hop.Listen(ctx, cfg.HTTPAddr, cfg.TCPAddr, cfg.socketOptions(), tlsCfg)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(reg))
	mux.Handle("/client", web.Handler())
	mux.Handle("/client/", web.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/ws", h.WebSocket(ctx, s.serve))
	srv := h.HTTPServer(ctx, mux)
	cfg.Limits.HTTPServer(srv)

	tcpAddr := ""
	if tcpLn != nil {
		tcpAddr = tcpLn.Addr().String()
	}
	log.Info("bp-server listening", "http", httpLn.Addr().String(), "tcp", tcpAddr,
		"version", config.Version, "read_size", cfg.ReadSize, "read_delay", cfg.ReadDelay,
		"read_rate", cfg.ReadRate, "pause_after", cfg.PauseAfter, "pause_for", cfg.PauseFor,
		"pause_every", cfg.PauseEvery, "rcvbuf", cfg.RcvBuf, "sample_interval", cfg.SampleInterval,
		"max_connections", cfg.MaxConnections, "idle_timeout", cfg.IdleTimeout, "allowed_origins", h.Guard.Origins().String(), "tls", tlsCfg != nil)
	if ready != nil {
		ready(httpLn.Addr().String(), tcpAddr)
	}
	return h.Serve(ctx, []hop.Served{{Server: srv, Listener: httpLn}}, tcpLn, s.serve)
}

// serve runs one connection's session and logs its progress at a
// bounded rate.
func (s *server) serve(ctx context.Context, hello *flow.Hello, c flow.Conn, peer string) {
	plan := s.plan(hello)
	sess := flow.NewSession(c, plan, s.obs)
	attrs := []any{"peer", peer, "protocol", c.Protocol()}
	kind := "none"
	if hello != nil {
		kind = "bp"
		if hello.Legacy {
			kind = "legacy"
		}
		attrs = append(attrs, "run", hello.RunID, "direction", hello.Direction)
		if len(hello.Via) > 0 {
			attrs = append(attrs, "via", hello.Via)
		}
	}
	log := s.log.With(attrs...)
	s.windows.add(c.NetConn(), log)
	log.Info("connection opened", "hello", kind, "announced_bytes", announced(hello))

	stopLog := make(chan struct{})
	var logDone sync.WaitGroup
	if s.cfg.LogInterval > 0 {
		logDone.Add(1)
		go func() {
			defer logDone.Done()
			s.logProgress(log, sess, hello, stopLog)
		}()
	}
	snap, err := sess.Run(ctx)
	close(stopLog)
	logDone.Wait()
	windowCloses := s.windows.remove(c.NetConn())
	elapsed := time.Since(snap.Start)
	fields := []any{"read_bytes", snap.Read, "written_bytes", snap.Written, "acked_bytes", snap.Acked,
		"receive_window_closes", windowCloses,
		"duration", elapsed.Round(time.Millisecond).String(),
		"read_rate", config.HumanBytes(float64(snap.Read)/elapsed.Seconds()) + "/s"}
	switch {
	case err == nil:
		log.Info("connection closed", fields...)
	case errors.Is(err, context.Canceled):
		log.Info("connection closed at shutdown", fields...)
	default:
		log.Warn("connection failed", append(fields, "reason", flow.ErrorReason(err), "err", err)...)
	}
}

func announced(h *flow.Hello) int64 {
	if h == nil {
		return 0
	}
	return h.TotalBytes
}

// logProgress logs every LogInterval: progress against the announced total,
// the read rate over the interval, and whether reading is paused.
func (s *server) logProgress(log *slog.Logger, sess *flow.Session, hello *flow.Hello, stop <-chan struct{}) {
	t := time.NewTicker(s.cfg.LogInterval)
	defer t.Stop()
	var last flow.Snapshot
	lastAt := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			snap := sess.Snapshot()
			dt := now.Sub(lastAt).Seconds()
			fields := []any{"read_bytes", snap.Read,
				"read_rate", config.HumanBytes(float64(snap.Read-last.Read)/dt) + "/s",
				"paused", snap.Paused}
			if total := announced(hello); total > 0 {
				fields = append(fields, "progress", fmt.Sprintf("%.1f%%", 100*float64(snap.Read)/float64(total)))
			}
			if snap.Written > 0 {
				fields = append(fields, "written_bytes", snap.Written, "in_pipe_bytes", snap.InPipe(),
					"write_rate", config.HumanBytes(float64(snap.Written-last.Written)/dt)+"/s")
			}
			log.Info("connection progress", fields...)
			last, lastAt = snap, now
		}
	}
}

// plan turns a client's hello into what this side does: read what the
// client writes, write what the client asked to read.
func (s *server) plan(h *flow.Hello) flow.Plan {
	p := flow.Plan{
		Read:        s.cfg.Reading.Settings(),
		PeerWrites:  h == nil || h.Direction.ClientWrites(),
		AckInterval: s.cfg.AckInterval,
		IdleTimeout: s.cfg.IdleTimeout,
	}
	if h != nil && h.Direction.ServerWrites() {
		size := h.PayloadSize
		if size <= 0 {
			size = flow.DefaultReadSize
		}
		p.Write = &flow.WritePlan{
			Payloads:       s.payload,
			PayloadSize:    size,
			Rate:           h.Rate,
			TotalBytes:     h.TotalBytes,
			Duration:       h.Duration(),
			StallThreshold: s.cfg.StallThreshold,
		}
	}
	return p
}
