package flow

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	pb "github.com/go-backpressure/go-backpressure/proto/backpressure/v1"
)

// GRPCServerOptions configure a GRPCServer.
type GRPCServerOptions struct {
	// TLS, when set, serves TLS (its NextProtos become h2); nil: h2c.
	TLS *tls.Config
	// HelloTimeout bounds the wait for a stream's hello and for a new
	// connection's TLS and HTTP/2 handshake.
	HelloTimeout time.Duration
	// Base is every handler's context: cancelled, the streams end (the
	// server's shutdown). Nil: context.Background().
	Base context.Context
	// Admit, if set, is asked for each accepted connection before any byte
	// is read; false: it closed the connection (a refusal it counted).
	// Release gives the place back when the connection ends.
	Admit   func(nc net.Conn) bool
	Release func()
	// Refused, if set, hears of every stream whose hello was refused.
	Refused func(peer string, err error)
	// Buffered, if set, counts the bytes the streams received that their
	// handlers have not read (grpc-go's receive buffers).
	Buffered *StreamBuffer
}

// errStreamGone is the end of a stream whose client reset it (RST_STREAM)
// or whose connection closed under it.
var errStreamGone = fmt.Errorf("the client reset the stream or its connection closed: %w", syscall.ECONNRESET)

// GRPCHandler serves one stream: the same signature as a TCP or WebSocket
// connection's handler, so the server's session code serves all three.
type GRPCHandler func(ctx context.Context, hello *Hello, c Conn, peer string)

// GRPCServer serves the Backpressure service, turning each RPC into its
// hello and a Conn for the handler.
type GRPCServer struct {
	pb.UnimplementedBackpressureServer
	opts   GRPCServerOptions
	handle GRPCHandler
	srv    *grpc.Server
	conns  sync.Map // the remote address of each open connection -> *tapConn
}

// NewGRPCServer returns a server whose streams handle serves.
func NewGRPCServer(o GRPCServerOptions, handle GRPCHandler) *GRPCServer {
	if o.Base == nil {
		o.Base = context.Background()
	}
	if o.TLS != nil {
		o.TLS = o.TLS.Clone()
		o.TLS.NextProtos = []string{"h2"}
	}
	s := &GRPCServer{opts: o, handle: handle}
	sopts := []grpc.ServerOption{grpc.MaxRecvMsgSize(MaxGRPCMessage), grpc.MaxSendMsgSize(MaxGRPCMessage)}
	if o.HelloTimeout > 0 {
		sopts = append(sopts, grpc.ConnectionTimeout(o.HelloTimeout))
	}
	s.srv = grpc.NewServer(sopts...)
	pb.RegisterBackpressureServer(s.srv, s)
	return s
}

// Serve accepts connections on ln until Stop; ln's connections are plain
// TCP (TLS, when configured, is done here).
func (s *GRPCServer) Serve(ln net.Listener) error {
	err := s.srv.Serve(&grpcListener{Listener: ln, s: s})
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Stop stops accepting, lets the streams that are still open end (their
// handlers see Base cancelled) until ctx ends, then closes what is left.
func (s *GRPCServer) Stop(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.srv.Stop()
		<-done
	}
}

func (s *GRPCServer) Upload(rpc grpc.BidiStreamingServer[pb.Message, pb.Message]) error {
	return s.serve(Up, rpc)
}

func (s *GRPCServer) Download(rpc grpc.BidiStreamingServer[pb.Message, pb.Message]) error {
	return s.serve(Down, rpc)
}

func (s *GRPCServer) Both(rpc grpc.BidiStreamingServer[pb.Message, pb.Message]) error {
	return s.serve(Both, rpc)
}

// serve reads the stream's hello and hands the stream to the handler, in
// a goroutine of its own: a Conn's close returns this RPC handler (which
// is what ends a server's stream in grpc-go, and what makes its Send and
// Recv return) while the handler's session is still closing.
func (s *GRPCServer) serve(dir Direction, rpc grpc.BidiStreamingServer[pb.Message, pb.Message]) error {
	ctx := rpc.Context()
	peerAddr := "unknown"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		peerAddr = p.Addr.String()
	}
	v, ok := s.conns.Load(peerAddr)
	if !ok {
		return status.Error(codes.Internal, "the stream's connection is unknown")
	}
	hello, helloSize, err := s.readHello(ctx, rpc, dir)
	if err != nil {
		if s.opts.Refused != nil && ctx.Err() == nil {
			s.opts.Refused(peerAddr, err)
		}
		return grpcStatus(err)
	}
	c := newGRPCStream(rpc, v.(*tapConn), hello.Stream)
	c.readOn(helloSize) // read before the stream knew its id
	var (
		once   sync.Once
		result error
		closed = make(chan struct{})
	)
	c.end = func(err error) {
		once.Do(func() { result = grpcStatus(err); close(closed) })
		c.markEnded()
	}
	// The client reset the stream, or its connection went: the session
	// ends with that cause (reason reset), not as a shutdown would; or
	// grpc-go ended the stream over a failed Recv, whose error it then
	// ends with (recvState).
	hctx, cancel := context.WithCancelCause(s.opts.Base)
	defer context.AfterFunc(ctx, func() { cancel(c.recv.cause(time.Second, errStreamGone)) })()
	handled := make(chan struct{})
	go func() {
		defer close(handled)
		defer cancel(nil)
		s.handle(hctx, &hello, c, peerAddr)
	}()
	select {
	case <-handled:
		c.beginClose(nil) // a handler that returned without closing
	case <-closed:
	}
	<-closed
	return result
}

// readHello waits, at most HelloTimeout, for the stream's first message,
// which must be a hello for the method's direction, and returns it with
// the bytes it took on the wire.
func (s *GRPCServer) readHello(ctx context.Context, rpc grpcRPC, dir Direction) (Hello, int, error) {
	type recvd struct {
		m   *pb.Message
		err error
	}
	ch := make(chan recvd, 1)
	go func() {
		m, err := rpc.Recv()
		ch <- recvd{m, err}
	}()
	var timeout <-chan time.Time
	if s.opts.HelloTimeout > 0 {
		t := time.NewTimer(s.opts.HelloTimeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return Hello{}, 0, HelloError{fmt.Errorf("read hello: %w", grpcError(r.err))}
		}
		h, err := helloFromProto(r.m.GetHello(), dir)
		return h, grpcWireSize(r.m), err
	case <-timeout:
		return Hello{}, 0, HelloError{fmt.Errorf("no hello within %s", s.opts.HelloTimeout)}
	case <-ctx.Done():
		return Hello{}, 0, HelloError{fmt.Errorf("read hello: %w", ctx.Err())}
	}
}

// grpcListener admits each connection, does TLS when configured, and
// hands grpc-go the connection as a tapConn.
type grpcListener struct {
	net.Listener
	s *GRPCServer
}

func (l *grpcListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		o := l.s.opts
		if o.Admit != nil && !o.Admit(nc) {
			continue
		}
		plain := nc
		if o.TLS != nil {
			plain = tls.Server(nc, o.TLS) // the handshake runs in grpc-go's goroutine
		}
		tc := newTapConn(plain, nc, newH2Tap(false))
		tc.buf = o.Buffered.Conn()
		tc.tap.buf = tc.buf
		tc.tap.in.Data = tc.buf.ReceivedOn
		addr := nc.RemoteAddr().String()
		tc.onClose = func() {
			tc.buf.Close()
			l.s.conns.CompareAndDelete(addr, tc)
			if o.Release != nil {
				o.Release()
			}
		}
		l.s.conns.Store(addr, tc)
		return tc, nil
	}
}
