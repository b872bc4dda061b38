package flowtest

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// socketKey is the context key of an HTTP/2 request's connection.
type socketKey struct{}

// Serve serves proto's transport on ln, a listener the test opened with
// its socket options: every connection's hello (or, for gRPC, every
// stream's) and Conn go to handle, in a goroutine of its own; an accept or
// hello error goes to handle with c nil. It returns the target that
// reaches it. At cleanup the server stops and the handlers are waited for.
// Tests that loop over flow.Protocols serve and dial through it, so a new
// transport adds its case here.
func Serve(tb testing.TB, proto flow.Protocol, ln net.Listener, handle func(ctx context.Context, h *flow.Hello, c flow.Conn, err error)) flow.Target {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	track := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	addr := ln.Addr().String()
	var target flow.Target
	switch proto {
	case flow.TCP:
		track(func() {
			for {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				track(func() {
					h, c, err := flow.AcceptTCP(nc, 5*time.Second)
					if err != nil {
						nc.Close()
					}
					handle(ctx, h, c, err)
				})
			}
		})
		target = flow.Target{Protocol: flow.TCP, Addr: addr}
	case flow.WebSocket:
		up := flow.NewUpgrader()
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h, c, err := up.Accept(w, r)
			handle(ctx, h, c, err)
		})}
		track(func() { srv.Serve(ln) })
		tb.Cleanup(func() { srv.Close() })
		target = flow.Target{Protocol: flow.WebSocket, Addr: "ws://" + addr + "/ws"}
	case flow.GRPC:
		srv := flow.NewGRPCServer(flow.GRPCServerOptions{HelloTimeout: 5 * time.Second, Base: ctx,
			Refused: func(_ string, err error) { handle(ctx, nil, nil, err) }},
			func(ctx context.Context, h *flow.Hello, c flow.Conn, _ string) { handle(ctx, h, c, nil) })
		track(func() { srv.Serve(ln) })
		tb.Cleanup(func() {
			stop, cancelStop := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancelStop()
			srv.Stop(stop)
		})
		target = flow.Target{Protocol: flow.GRPC, Addr: addr}
	case flow.HTTP2:
		// net/http's server, h2c by prior knowledge, each stream handed
		// over as bp-server does (flow.AcceptHTTP2).
		protos := new(http.Protocols)
		protos.SetUnencryptedHTTP2(true)
		srv := &http.Server{Protocols: protos,
			ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, socketKey{}, c) },
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sock, _ := r.Context().Value(socketKey{}).(net.Conn)
				h, c, err := flow.AcceptHTTP2(w, r, sock, 5*time.Second)
				handle(ctx, h, c, err)
			})}
		track(func() { srv.Serve(ln) })
		tb.Cleanup(func() { srv.Close() })
		target = flow.Target{Protocol: flow.HTTP2, Addr: "h2c://" + addr + "/h2"}
	default:
		tb.Fatalf("flowtest.Serve: no server for protocol %q", proto)
	}
	// Cleanups run last-in first-out: this one first (no more accepts,
	// the handlers' context cancelled), then the server's own.
	tb.Cleanup(func() { ln.Close(); cancel(); wg.Wait() })
	return target
}

// Dial connects to t and sends hello: a connection, or for a multiplexed
// target a stream on a connection of its own, closed at cleanup.
func Dial(tb testing.TB, ctx context.Context, t flow.Target, hello flow.Hello, opts flow.SocketOptions) (flow.Conn, error) {
	tb.Helper()
	if !t.Multiplexed() {
		return flow.Dial(ctx, t, &hello, opts)
	}
	mux, err := flow.DialMux(ctx, t, opts)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { mux.Close() })
	return mux.OpenStream(ctx, hello)
}
