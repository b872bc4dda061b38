package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/procs"
	"github.com/go-backpressure/go-backpressure/internal/ratelog"
	"github.com/go-backpressure/go-backpressure/pkg/admission"
	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
)

// Guard holds one binary's limits; it is safe for concurrent use.
type Guard struct {
	m       *metrics.Metrics
	warn    *ratelog.Logger
	tcp     *admission.ConnLimit
	ws      *admission.ConnLimit
	grpc    *admission.ConnLimit
	h2      *admission.ConnLimit // HTTP/2 streams (runs), not connections
	origins *admission.OriginPolicy
	procs   *procs.Fitter // nil: GOMAXPROCS is left as it is
}

// New returns the guard for the limits (already validated).
func New(l config.Limits, m *metrics.Metrics, log *slog.Logger) *Guard {
	return &Guard{m: m, warn: ratelog.New(log), origins: l.Origins(),
		tcp: admission.NewConnLimit(l.MaxConnections), ws: admission.NewConnLimit(l.MaxConnections),
		grpc: admission.NewConnLimit(l.MaxConnections),
		h2:   admission.NewConnLimit(l.MaxConnections)}
}

// FitProcs has the guard count every admitted connection (and HTTP/2
// run) into f, which fits the runtime's processors to them (package
// procs). Call it before the listeners start; nil leaves them as they are.
func (g *Guard) FitProcs(f *procs.Fitter) { g.procs = f }

// Warn is the guard's rate-limited log of refusals, for the hop's other
// refusals (HTTP connections over their bound) to share its budget.
func (g *Guard) Warn() *ratelog.Logger { return g.warn }

// Origins is the origin policy, for the start-up log.
func (g *Guard) Origins() *admission.OriginPolicy { return g.origins }

// AdmitTCP takes a place on the TCP listener for nc, or closes nc at once
// (listener full), counts and logs it, and returns false. Admitted, the
// caller calls ReleaseTCP when the connection ends.
func (g *Guard) AdmitTCP(nc net.Conn) bool {
	if g.tcp.Acquire() {
		g.procs.Open()
		return true
	}
	g.m.Reject(flow.TCP, "limit")
	g.warn.Warn("limit", "connection refused: listener full", "protocol", flow.TCP, "peer", nc.RemoteAddr().String(), "max_connections", g.tcp.Max())
	nc.Close()
	return false
}

// ReleaseTCP gives back a place AdmitTCP took.
func (g *Guard) ReleaseTCP() { g.tcp.Release(); g.procs.Close() }

// AdmitGRPC is AdmitTCP for the gRPC listener, whose connections (each
// carrying any number of streams) have a limit of their own.
func (g *Guard) AdmitGRPC(nc net.Conn) bool {
	if g.grpc.Acquire() {
		g.procs.Open()
		return true
	}
	g.m.Reject(flow.GRPC, "limit")
	g.warn.Warn("limit", "connection refused: listener full", "protocol", flow.GRPC, "peer", nc.RemoteAddr().String(), "max_connections", g.grpc.Max())
	nc.Close()
	return false
}

// ReleaseGRPC gives back a place AdmitGRPC took.
func (g *Guard) ReleaseGRPC() { g.grpc.Release(); g.procs.Close() }

// AdmitWebSocket checks a /ws request against the origin policy and the
// listener's limit before the upgrade; a refused request is answered (403,
// 503), counted and logged. Admitted, the caller calls ReleaseWebSocket
// when the connection ends.
func (g *Guard) AdmitWebSocket(w http.ResponseWriter, r *http.Request) bool {
	if !g.AdmitOrigin(w, r, flow.WebSocket) {
		return false
	}
	if !g.ws.Acquire() {
		g.m.Reject(flow.WebSocket, "limit")
		g.warn.Warn("limit", "connection refused: listener full", "protocol", flow.WebSocket, "peer", r.RemoteAddr, "max_connections", g.ws.Max())
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many connections (see --max-connections)", http.StatusServiceUnavailable)
		return false
	}
	g.procs.Open()
	return true
}

// AdmitOrigin checks a browser's request (/ws, and HTTP/2's /h2 and
// /h2/acks, which a page's fetch() reaches too) against the origin
// policy; a refused one is answered 403, counted and logged.
func (g *Guard) AdmitOrigin(w http.ResponseWriter, r *http.Request, p flow.Protocol) bool {
	if g.origins.Allowed(r) {
		return true
	}
	g.m.Reject(p, "origin")
	g.warn.Warn("origin", string(p)+" refused: origin not allowed", "peer", r.RemoteAddr, "origin", r.Header.Get("Origin"), "allowed", g.origins.String())
	http.Error(w, "origin not allowed (see --allowed-origins)", http.StatusForbidden)
	return false
}

// ReleaseWebSocket gives back a place AdmitWebSocket took.
func (g *Guard) ReleaseWebSocket() { g.ws.Release(); g.procs.Close() }

// AdmitStream takes a place for one HTTP/2 run (a stream: --max-connections
// counts runs, each a stream, whatever connections carry them), or answers
// 503, counts and logs it, and returns false. Admitted, the caller calls
// ReleaseStream when the run ends.
func (g *Guard) AdmitStream(w http.ResponseWriter, r *http.Request) bool {
	if g.h2.Acquire() {
		g.procs.Open()
		return true
	}
	g.m.Reject(flow.HTTP2, "limit")
	g.warn.Warn("limit", "stream refused: listener full", "protocol", flow.HTTP2, "peer", r.RemoteAddr, "max_connections", g.h2.Max())
	w.Header().Set("Retry-After", "1")
	http.Error(w, "too many runs (see --max-connections)", http.StatusServiceUnavailable)
	return false
}

// ReleaseStream gives back a place AdmitStream took.
func (g *Guard) ReleaseStream() { g.h2.Release(); g.procs.Close() }

// RejectHTTP2 answers an HTTP/2 request refused before it ran (status and
// why, for the peer), counts it by reason (admission.RejectReasons) and
// logs it: an ack stream over its bound, or an upload naming an ack
// stream it may not have.
func (g *Guard) RejectHTTP2(w http.ResponseWriter, r *http.Request, reason string, status int, why string) {
	g.m.Reject(flow.HTTP2, reason)
	g.warn.Warn(reason, "http2 request refused", "peer", r.RemoteAddr, "path", r.URL.Path, "status", status, "why", why)
	http.Error(w, why, status)
}

// RejectStarted counts and logs an HTTP/2 request refused after its
// response's headers went out (a download whose ack stream never came):
// the caller told the peer why in the body.
func (g *Guard) RejectStarted(r *http.Request, reason, why string) {
	g.m.Reject(flow.HTTP2, reason)
	g.warn.Warn(reason, "http2 request refused", "peer", r.RemoteAddr, "path", r.URL.Path, "status", http.StatusOK, "why", why)
}

// Refused counts and logs a connection that did not open: a refused hello
// (the flow package has closed it, with its close code on WebSocket), or a
// /ws request that was no valid upgrade (gorilla answered it).
func (g *Guard) Refused(p flow.Protocol, peer string, err error) {
	if errors.Is(err, context.Canceled) {
		return // shutdown, not the peer's fault
	}
	if errors.Is(err, flow.ErrHandshake) {
		g.m.Reject(p, "handshake")
		g.warn.Warn("handshake", "websocket handshake failed", "peer", peer, "err", err)
		return
	}
	g.m.Refused(p, err)
	g.warn.Warn(flow.ErrorReason(err), string(p)+" hello rejected", "peer", peer, "err", err)
}

// AcceptTCP is flow.AcceptTCP that stops waiting for the hello when ctx
// ends, so a peer that is slow to say hello cannot hold up a shutdown; its
// error then wraps context.Canceled (and Refused does not count it).
func AcceptTCP(ctx context.Context, nc net.Conn, helloTimeout time.Duration) (*flow.Hello, flow.Conn, error) {
	stop := context.AfterFunc(ctx, func() { nc.SetReadDeadline(time.Now()) })
	defer stop()
	h, c, err := flow.AcceptTCP(nc, helloTimeout)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w: %w", context.Canceled, err)
	}
	return h, c, err
}
