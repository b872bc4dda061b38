package hop

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// grpcServed is the gRPC server and its listener, run and stopped by Serve
// beside the HTTP servers.
type grpcServed struct {
	server   *flow.GRPCServer
	listener net.Listener
}

// GRPCServer returns the gRPC server whose streams handle serves: each
// connection admitted by the guard (its own --max-connections), each
// refused hello counted and logged like the TCP listener's, every stream
// tracked until its handler returns and run under the connections'
// context (so shutdown ends it). tlsCfg nil serves h2c.
func (h *Hop) GRPCServer(ctx context.Context, tlsCfg *tls.Config, handle Handler) *flow.GRPCServer {
	connCtx := h.ConnContext(ctx)
	return flow.NewGRPCServer(flow.GRPCServerOptions{
		TLS: tlsCfg, HelloTimeout: h.HelloTimeout, Base: connCtx,
		Admit: h.Guard.AdmitGRPC, Release: h.Guard.ReleaseGRPC,
		Refused:  func(peer string, err error) { h.Guard.Refused(flow.GRPC, peer, err) },
		Buffered: &h.grpcBuffered,
	}, func(ctx context.Context, hello *flow.Hello, c flow.Conn, peer string) {
		h.conns.Add(1)
		defer h.conns.Done()
		handle(ctx, hello, c, peer)
	})
}
