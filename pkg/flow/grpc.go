package flow

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/go-backpressure/go-backpressure/proto/backpressure/v1"
)

// gRPC: the protocol as the Backpressure service (proto/backpressure/v1),
// one RPC per stream, each message a payload, an ack or a fin, the hello
// first; docs/HTTP2.md says why every method is a bidirectional stream.
//
// grpc-go runs on a connection this package dials (or accepts) itself, so
// the socket options apply, NetConn is the real socket, and every HTTP/2
// frame passes an h2Tap, above TLS when there is TLS: TLS is done here, not
// by grpc-go's credentials, so the tap reads plain text.

// MaxGRPCMessage bounds one gRPC message either way: a payload of
// MaxPayloadSize and its framing. A peer's larger message fails its stream
// with RESOURCE_EXHAUSTED (reason too_large).
const MaxGRPCMessage = MaxPayloadSize + 1024

// errMuxGone: a Mux is one connection; grpc-go may not dial another.
var errMuxGone = errors.New("the gRPC connection ended (a Mux is one connection, never redialled)")

func init() { dialGRPC = dialGRPCMux }

// grpcMux is one gRPC connection on which a client opens streams.
type grpcMux struct {
	cc     *grpc.ClientConn
	client pb.BackpressureClient
	conn   *tapConn
}

// dialGRPCMux dials t once (h2c, or TLS with ALPN h2 for grpcs://) and
// waits until grpc-go's HTTP/2 connection is ready on it.
func dialGRPCMux(ctx context.Context, t Target, opts SocketOptions) (Mux, error) {
	d := opts.dialer()
	raw, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", t.Addr, err)
	}
	plain := raw
	if t.TLS {
		if plain, err = grpcClientTLS(ctx, raw, t.Addr, opts.TLS); err != nil {
			return nil, err
		}
	}
	tc := newTapConn(plain, raw, newH2Tap(true))
	tc.queued = grpcQueued.Conn()
	tc.tap.outData = tc.queued.Read
	var dialed atomic.Bool
	dial := func(context.Context, string) (net.Conn, error) {
		if dialed.CompareAndSwap(false, true) {
			return tc, nil
		}
		return nil, errMuxGone
	}
	cc, err := grpc.NewClient("passthrough:///"+t.Addr, grpc.WithContextDialer(dial),
		grpc.WithTransportCredentials(insecure.NewCredentials()), // TLS is done here (above)
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxGRPCMessage), grpc.MaxCallSendMsgSize(MaxGRPCMessage)),
		grpc.WithDisableRetry(), grpc.WithIdleTimeout(0))
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("grpc client for %s: %w", t.Addr, err)
	}
	if err := waitReady(ctx, cc); err != nil {
		cc.Close()
		tc.Close()
		return nil, fmt.Errorf("grpc connection to %s: %w", t.Addr, err)
	}
	return &grpcMux{cc: cc, client: pb.NewBackpressureClient(cc), conn: tc}, nil
}

// grpcClientTLS is the client's TLS for grpcs://: ALPN h2, which gRPC
// servers require.
func grpcClientTLS(ctx context.Context, raw net.Conn, addr string, cfg *tls.Config) (net.Conn, error) {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	tc, err := clientTLS(ctx, raw, addr, cfg)
	if err != nil {
		return nil, err
	}
	if p := tc.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "h2" {
		tc.Close()
		return nil, fmt.Errorf("tls with %s: the server did not agree to HTTP/2 (ALPN %q)", addr, p)
	}
	return tc, nil
}

// waitReady connects cc and waits until it is ready, or failed.
func waitReady(ctx context.Context, cc *grpc.ClientConn) error {
	cc.Connect()
	for {
		s := cc.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			return errors.New("the HTTP/2 handshake failed (is it a gRPC server? grpc:// is h2c, grpcs:// TLS)")
		}
		if !cc.WaitForStateChange(ctx, s) {
			return ctx.Err()
		}
	}
}

func (m *grpcMux) NetConn() net.Conn { return m.conn.raw }
func (m *grpcMux) Close() error      { return m.cc.Close() }

// OpenStream opens the RPC of hello's direction and sends hello first. The
// stream lives until its Conn is closed, not until ctx ends.
func (m *grpcMux) OpenStream(ctx context.Context, hello Hello) (Conn, error) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	open := m.client.Upload
	switch hello.Direction {
	case Down:
		open = m.client.Download
	case Both:
		open = m.client.Both
	}
	rpc, err := open(sctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open grpc stream: %w", grpcError(err))
	}
	ph, err := helloToProto(hello)
	if err == nil {
		hm := &pb.Message{Kind: &pb.Message_Hello{Hello: ph}}
		if err = rpc.Send(hm); err == nil {
			m.conn.queued.Received(grpcWireSize(hm))
		}
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("send hello: %w", err)
	}
	s := newGRPCStream(rpc, m.conn, hello.Stream)
	s.end = func(err error) {
		if err != nil {
			cancel() // RST_STREAM: the server sees the stream cancelled
			return
		}
		go s.CloseWrite() // END_STREAM, after a Send in progress
		time.AfterFunc(grpcLinger, cancel)
	}
	return s, nil
}

// helloToProto is hello as the service's message, checked as EncodeHello
// checks it.
func helloToProto(h Hello) (*pb.Hello, error) {
	if _, err := EncodeHello(h); err != nil {
		return nil, err
	}
	v := h.Version
	if v == 0 {
		v = ProtocolVersion
	}
	return &pb.Hello{Version: int32(v), RunId: h.RunID, Direction: string(h.Direction),
		PayloadSize: int64(h.PayloadSize), TotalBytes: h.TotalBytes, Rate: h.Rate, DurationMs: h.DurationMS,
		Via: h.Via, Stream: int32(h.Stream), FullSpeed: h.FullSpeed}, nil
}

// helloFromProto is the hello a client sent on a method of direction dir,
// checked as ParseHello checks one; its errors are HelloErrors.
func helloFromProto(p *pb.Hello, dir Direction) (Hello, error) {
	if p == nil {
		return Hello{}, HelloError{errors.New("the stream's first message is no hello")}
	}
	if int64(int(p.GetPayloadSize())) != p.GetPayloadSize() {
		return Hello{}, HelloError{fmt.Errorf("hello payload_size %d out of range", p.GetPayloadSize())}
	}
	h := Hello{Type: "hello", Version: int(p.GetVersion()), RunID: p.GetRunId(), Direction: Direction(p.GetDirection()),
		PayloadSize: int(p.GetPayloadSize()), TotalBytes: p.GetTotalBytes(), Rate: p.GetRate(), DurationMS: p.GetDurationMs(),
		Via: p.GetVia(), Stream: int(p.GetStream()), FullSpeed: p.GetFullSpeed()}
	if h.Direction == "" {
		h.Direction = dir
	}
	if h.Direction != dir {
		return Hello{}, HelloError{fmt.Errorf("hello direction %q on the method for %q", h.Direction, dir)}
	}
	if err := h.Validate(); err != nil {
		return Hello{}, HelloError{err}
	}
	if h.Stream < 0 {
		return Hello{}, HelloError{fmt.Errorf("hello stream %d is negative", h.Stream)}
	}
	return h, nil
}
