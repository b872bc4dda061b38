package hop

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-backpressure/go-backpressure/internal/guard"
	"github.com/go-backpressure/go-backpressure/internal/procs"
	"github.com/go-backpressure/go-backpressure/internal/ratelog"
	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// Options are what Start takes from a binary's configuration.
type Options struct {
	Name string // for log lines: "bp-server"
	Log  *slog.Logger

	Limits   config.Limits
	TLS      config.TLSServe
	HTTPAddr string
	TCPAddr  string             // empty: no raw TCP listener
	GRPCAddr string             // empty: no gRPC listener
	Socket   flow.SocketOptions // on the downstream listeners

	// FDsPerConnection is how many file descriptors one admitted
	// connection holds (0 means 1; bp-relay: 2, downstream and upstream,
	// and 6 when it splices, with a pipe of two each way), for the
	// start-up check against RLIMIT_NOFILE.
	FDsPerConnection int
	// ExtraHTTPListeners counts HTTP listeners the binary opens besides
	// Start's (bp-relay's --metrics-addr), for the same check.
	ExtraHTTPListeners int

	StallThreshold time.Duration
	HelloTimeout   time.Duration
	SampleInterval time.Duration
	// OnWindow, if set, gets the socket sampler's window events.
	OnWindow func(sockstat.WindowEvent)
	// HTTP2 serves HTTP/2 on the HTTP listener beside HTTP/1.1 (h2 by
	// ALPN over TLS, h2c with prior knowledge), with its metrics.
	HTTP2 bool
	// Procs, if set, fits GOMAXPROCS to the admitted connections
	// (package procs). Only a binary's main sets it: it changes the
	// whole process, a test binary's too.
	Procs *procs.Fitter
}

// Setup is a hop ready to serve: its registry and core metrics, the socket
// sampler (running until Close), the Hop with its guard and upgrader, and
// the downstream listeners.
type Setup struct {
	Hop      *Hop
	Registry *prometheus.Registry
	Metrics  *metrics.Metrics
	Sampler  *sockstat.Sampler
	TLS      *tls.Config  // nil: plain TCP
	HTTPLn   net.Listener // /ws and the binary's HTTP endpoints
	TCPLn    net.Listener // nil when Options.TCPAddr is empty
	// GRPCLn is the gRPC listener, plain TCP (the gRPC server does TLS
	// itself, above its frame tap); nil when Options.GRPCAddr is empty.
	GRPCLn net.Listener

	limits      config.Limits
	listener    *metrics.Listener
	acceptWarn  *ratelog.Logger
	samplerDone chan struct{}
	h2          *H2Metrics // nil: no HTTP/2
}

// Start builds everything both binaries set up before serving, in this
// order: metrics, the socket sampler, host metrics, the Hop, then TLS and
// the listeners. The sampler runs under the connections' context, so it
// samples until the last connection is cancelled. On error what was
// started is stopped; otherwise the caller defers Close.
func Start(ctx context.Context, o Options) (*Setup, error) {
	reg := metrics.NewRegistry()
	m := metrics.New(reg, config.Version)
	m.SetStallThreshold(o.StallThreshold)
	sampler, err := metrics.NewSocketSampler(reg, metrics.SamplerOptions{Interval: o.SampleInterval, OnWindow: o.OnWindow})
	if err != nil {
		return nil, fmt.Errorf("socket metrics: %w", err)
	}
	if err := metrics.RegisterNetstat(reg); err != nil {
		return nil, fmt.Errorf("host metrics: %w", err)
	}
	o.Limits = checkFDs(o) // the guard's limits: --max-connections may be fitted to RLIMIT_NOFILE
	s := &Setup{Hop: newHop(o, m), Registry: reg, Metrics: m, Sampler: sampler, limits: o.Limits,
		listener: metrics.NewListener(reg), acceptWarn: ratelog.New(o.Log), samplerDone: make(chan struct{})}
	connCtx := s.Hop.ConnContext(ctx)
	go func() { defer close(s.samplerDone); sampler.Run(connCtx) }()

	if s.TLS, err = o.TLS.ServerConfig(); err != nil {
		s.Close()
		return nil, err
	}
	httpTLS := s.TLS
	if o.HTTP2 {
		s.h2 = NewH2Metrics(reg)
		if httpTLS != nil {
			httpTLS = httpTLS.Clone()
			httpTLS.NextProtos = []string{"h2", "http/1.1"} // h2 first: WebSocket clients offer only http/1.1
		}
	}
	var h2Buf *flow.StreamBuffer
	if s.h2 != nil {
		h2Buf = &s.h2.buffered
	}
	RegisterStreamBuffers(reg, h2Buf, &s.Hop.grpcBuffered)
	if s.HTTPLn, s.TCPLn, err = Listen(ctx, o.HTTPAddr, o.TCPAddr, o.Socket, httpTLS, s.TLS, s.retry); err != nil {
		s.Close()
		return nil, err
	}
	if o.GRPCAddr != "" {
		ln, err := flow.ListenTCP(ctx, o.GRPCAddr, o.Socket)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("grpc listener: %w", err)
		}
		s.GRPCLn = s.retry(ln, "grpc")
	}
	return s, nil
}

const streamBufferedHelp = "Bytes the server's HTTP/2 or gRPC streams received (DATA payload past the frame tap) that its sessions have not read yet: in the HTTP/2 server's buffers, not in any socket queue."

// RegisterStreamBuffers exports the bytes the server's HTTP/2 and gRPC
// streams received and its sessions have not read (h2 and grpc; nil
// counts 0, a protocol that is off): a place of the byte map no socket
// statistic sees (docs/METRICS.md). Exported for the metrics docs test.
func RegisterStreamBuffers(reg prometheus.Registerer, h2, grpc *flow.StreamBuffer) {
	for _, src := range []struct {
		proto flow.Protocol
		buf   *flow.StreamBuffer
	}{{flow.HTTP2, h2}, {flow.GRPC, grpc}} {
		buf := src.buf
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bp_stream_buffered_bytes", Help: streamBufferedHelp,
			ConstLabels: prometheus.Labels{"protocol": string(src.proto)}}, func() float64 { return float64(buf.Bytes()) }))
	}
}

// newHop is the Hop with its guard (limits, origin check, refusals
// counted: docs/SAFETY.md) and its WebSocket upgrader.
func newHop(o Options, m *metrics.Metrics) *Hop {
	h := &Hop{Name: o.Name, Log: o.Log, Guard: guard.New(o.Limits, m, o.Log),
		Upgrader: flow.NewUpgrader(), HelloTimeout: o.HelloTimeout}
	h.Guard.FitProcs(o.Procs)
	h.Upgrader.HelloTimeout = o.HelloTimeout
	h.Upgrader.MaxMessageSize = int64(o.Limits.WSMaxMessage)
	// The /ws handler checks the origin (the guard) before upgrading, so it
	// can count the refusal.
	h.Upgrader.CheckOrigin = func(*http.Request) bool { return true }
	return h
}

// Limits are the limits the hop serves with: the configuration's, with
// --max-connections fitted to RLIMIT_NOFILE when it was left unset.
func (s *Setup) Limits() config.Limits { return s.limits }

// Close cancels every connection, waits for the sampler to stop and
// closes the listeners (Serve, when it ran, has closed them already).
// Safe to call more than once.
func (s *Setup) Close() {
	s.Hop.Close()
	<-s.samplerDone
	if s.HTTPLn != nil {
		s.HTTPLn.Close()
	}
	if s.TCPLn != nil {
		s.TCPLn.Close()
	}
	if s.GRPCLn != nil {
		s.GRPCLn.Close()
	}
}

// Observer is what the binary's connections report to: the core metrics
// and the socket sampler.
func (s *Setup) Observer() flow.Observer { return flow.Multi(s.Metrics, s.Sampler) }

// TCPAddr is the raw TCP listener's address, or "" without one.
func (s *Setup) TCPAddr() string {
	if s.TCPLn == nil {
		return ""
	}
	return s.TCPLn.Addr().String()
}

// Mux returns a mux with /healthz and, when withMetrics, /metrics; the
// binary adds its own endpoints.
func (s *Setup) Mux(withMetrics bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	if withMetrics {
		mux.Handle("/metrics", metrics.Handler(s.Registry))
	}
	return mux
}

// Served is the HTTP server for handler on ln: under the connections'
// context, its errors logged, with the header limits and the bound on
// connections that are not WebSockets (--max-http-connections).
func (s *Setup) Served(ctx context.Context, handler http.Handler, ln net.Listener) Served {
	srv := s.Hop.HTTPServer(ctx, handler)
	s.limits.HTTPServer(srv)
	conns := newHTTPConns(s.limits.MaxHTTPConnections, s.listener, s.Hop.Guard.Warn())
	srv.ConnState = conns.ConnState
	if s.h2 != nil {
		enableHTTP2(srv, s.h2, s.Hop.Guard.Warn().Warn)
	}
	return Served{Server: srv, Listener: conns.Listener(ln)}
}

// Retry wraps a listener the binary opens itself (bp-relay's
// --metrics-addr) as Start wraps its own: temporary accept errors are
// counted, logged at a bounded rate and retried after a back-off.
func (s *Setup) Retry(ln net.Listener) net.Listener { return s.retry(ln, "http") }

func (s *Setup) retry(ln net.Listener, name string) net.Listener {
	return newRetryListener(ln, name, s.listener.AcceptErrors, s.acceptWarn)
}

// GRPCAddr is the gRPC listener's address, or "" without one.
func (s *Setup) GRPCAddr() string {
	if s.GRPCLn == nil {
		return ""
	}
	return s.GRPCLn.Addr().String()
}

// Serve is Hop.Serve with the TCP listener Start opened and, when Start
// opened one, the gRPC listener, whose streams handle serves too.
func (s *Setup) Serve(ctx context.Context, servers []Served, handle Handler) error {
	if s.GRPCLn != nil {
		s.Hop.grpc = &grpcServed{server: s.Hop.GRPCServer(ctx, s.TLS, handle), listener: s.GRPCLn}
	}
	return s.Hop.Serve(ctx, servers, s.TCPLn, handle)
}
