package hop

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/guard"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// ShutdownGrace bounds the whole shutdown, inside Cloud Foundry's 10 s.
const ShutdownGrace = 5 * time.Second

// Handler serves one connection whose hello (nil: hello-less) was read,
// until it ends or ctx is cancelled.
type Handler func(ctx context.Context, hello *flow.Hello, c flow.Conn, peer string)

// Hop runs one binary's downstream side.
type Hop struct {
	Name         string // for log lines: "bp-server"
	Log          *slog.Logger
	Guard        *guard.Guard
	Upgrader     *flow.Upgrader
	HelloTimeout time.Duration

	conns sync.WaitGroup
	acks  pairings[*flow.AckStream] // browsers' uploads' ack streams (h2acks.go)
	downs pairings[*downloadSlot]   // browsers' downloads waiting for their ack streams (h2down.go)
	grpc  *grpcServed               // nil: no gRPC listener (Setup.Serve sets it)
	// grpcBuffered is what the gRPC streams received and their handlers
	// have not read (bp_stream_buffered_bytes{protocol="grpc"}).
	grpcBuffered flow.StreamBuffer
	// ctx is every connection's context: cancelled at shutdown, after the
	// listeners stopped accepting, not when the caller's ctx ends.
	ctx    context.Context
	cancel context.CancelFunc
}

// Listen opens the HTTP listener and, when tcpAddr is not empty, the raw
// TCP one, with opts on both, each passed through wrap (nil: none) and
// then wrapped in TLS when its config (httpTLS, tcpTLS) is set. tcpLn is
// nil when tcpAddr is empty.
func Listen(ctx context.Context, httpAddr, tcpAddr string, opts flow.SocketOptions, httpTLS, tcpTLS *tls.Config, wrap func(ln net.Listener, name string) net.Listener) (httpLn, tcpLn net.Listener, err error) {
	if wrap == nil {
		wrap = func(ln net.Listener, _ string) net.Listener { return ln }
	}
	httpLn, err = flow.ListenHTTP(ctx, httpAddr, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("http listener: %w", err)
	}
	httpLn = wrap(httpLn, "http")
	if tcpAddr != "" {
		if tcpLn, err = flow.ListenTCP(ctx, tcpAddr, opts); err != nil {
			httpLn.Close()
			return nil, nil, fmt.Errorf("tcp listener: %w", err)
		}
		tcpLn = wrap(tcpLn, "tcp")
	}
	if httpTLS != nil {
		httpLn = tls.NewListener(httpLn, httpTLS)
	}
	if tcpLn != nil && tcpTLS != nil {
		tcpLn = tls.NewListener(tcpLn, tcpTLS)
	}
	return httpLn, tcpLn, nil
}

// ConnContext is the context connections run under; it outlives the
// caller's ctx until Serve's shutdown cancels it.
func (h *Hop) ConnContext(ctx context.Context) context.Context {
	if h.ctx == nil {
		h.ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	}
	return h.ctx
}

// Close cancels every connection; Serve does it at shutdown, and callers
// defer it for the paths that never reach Serve.
func (h *Hop) Close() {
	if h.cancel != nil {
		h.cancel()
	}
}

// WebSocket returns the /ws handler: guard (origin, limit), upgrade and
// hello, then handle, tracked until it returns.
func (h *Hop) WebSocket(ctx context.Context, handle Handler) http.HandlerFunc {
	connCtx := h.ConnContext(ctx)
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.Guard.AdmitWebSocket(w, r) {
			return
		}
		defer h.Guard.ReleaseWebSocket()
		hello, c, err := h.Upgrader.Accept(w, r)
		if err != nil {
			h.Guard.Refused(flow.WebSocket, r.RemoteAddr, err)
			return
		}
		h.conns.Add(1)
		defer h.conns.Done()
		handle(connCtx, hello, c, r.RemoteAddr)
	}
}

// HTTPServer returns an http.Server for handler whose requests run under
// the connections' context and whose errors go to the log.
func (h *Hop) HTTPServer(ctx context.Context, handler http.Handler) *http.Server {
	connCtx := h.ConnContext(ctx)
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return connCtx },
		ErrorLog:          slog.NewLogLogger(h.Log.Handler(), slog.LevelWarn),
	}
}

// Served pairs an HTTP server with its listener.
type Served struct {
	Server   *http.Server
	Listener net.Listener
}

// Serve runs the HTTP servers and, when tcpLn is set, the TCP accept loop
// (each connection through the guard and its hello to handleTCP), until
// ctx ends or one of them fails. Then it shuts down in order: stop
// accepting, cancel every connection, wait for them (at most
// ShutdownGrace), and returns the failure, if any.
func (h *Hop) Serve(ctx context.Context, servers []Served, tcpLn net.Listener, handleTCP Handler) error {
	connCtx := h.ConnContext(ctx)
	errc := make(chan error, len(servers)+1)
	for _, s := range servers {
		go func() {
			if err := s.Server.Serve(s.Listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http %s: %w", s.Listener.Addr(), err)
			}
		}()
	}
	if tcpLn != nil {
		go func() {
			if err := h.acceptTCP(connCtx, tcpLn, handleTCP); err != nil {
				errc <- err
			}
		}()
	}
	if g := h.grpc; g != nil {
		go func() {
			if err := g.server.Serve(g.listener); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("grpc %s: %w", g.listener.Addr(), err)
			}
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	h.Log.Info(h.Name + " shutting down")
	if tcpLn != nil {
		tcpLn.Close()
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	var shut sync.WaitGroup
	for _, s := range servers {
		shut.Add(1)
		go func() { defer shut.Done(); s.Server.Shutdown(shutCtx) }()
	}
	if g := h.grpc; g != nil {
		// Stops accepting at once; the open streams end below, when
		// their context is cancelled, and are then let go with GOAWAY.
		shut.Add(1)
		go func() { defer shut.Done(); g.server.Stop(shutCtx) }()
	}
	h.Close() // Shutdown does not see hijacked WebSocket connections
	waited := make(chan struct{})
	go func() { h.conns.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-shutCtx.Done():
		h.Log.Warn("connections still open at shutdown deadline")
	}
	shut.Wait()
	return runErr
}

// acceptTCP admits each connection through the guard, reads its hello and
// hands it to handle, tracked, until the listener closes or fails for good
// (Start's listeners retry what is temporary, out of file descriptors
// first).
func (h *Hop) acceptTCP(ctx context.Context, ln net.Listener, handle Handler) error {
	for {
		nc, err := ln.Accept() // temporary errors are retried inside (retryListener)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("tcp accept: %w", err)
		}
		if !h.Guard.AdmitTCP(nc) {
			continue // closed at once, counted
		}
		h.conns.Add(1)
		go func() {
			defer h.conns.Done()
			defer h.Guard.ReleaseTCP()
			hello, c, err := guard.AcceptTCP(ctx, nc, h.HelloTimeout)
			if err != nil {
				h.Guard.Refused(flow.TCP, nc.RemoteAddr().String(), err)
				nc.Close()
				return
			}
			handle(ctx, hello, c, nc.RemoteAddr().String())
		}()
	}
}
