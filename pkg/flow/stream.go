package flow

import (
	"context"
	"errors"
	"net"
	"time"
)

// The multiplexed transports: many streams on one TCP connection, each
// stream with its own flow-control window on top of the connection's and
// TCP's. A stream is a Conn; the connection is a Mux.
const (
	GRPC  Protocol = "grpc"
	HTTP2 Protocol = "http2"
)

// Mux is one multiplexed connection (HTTP/2 or gRPC) on which a client
// opens streams. Each stream is a Conn of its own, with its own session, so
// the writer and reader never know they share a socket.
type Mux interface {
	// OpenStream opens a stream and sends hello on it.
	OpenStream(ctx context.Context, hello Hello) (Conn, error)
	// NetConn is the one socket all the streams share.
	NetConn() net.Conn
	// Close ends the connection and every stream on it.
	Close() error
}

// StreamConn is the optional ability of a Conn that is one stream of a
// multiplexed connection: it tells where its writes waited (the stream's
// window, the connection's, or TCP underneath), which a socket's TCP_INFO
// cannot, since TCP may look healthy while a stream window is shut.
type StreamConn interface {
	// StreamIndex is the stream's place on its connection, from 0. Kernel
	// statistics of the shared socket are counted once per connection.
	StreamIndex() int
	// StreamLayer is what the stream layer looks like now.
	StreamLayer() StreamStats
}

// StreamStats is one stream's flow-control state as this side sees it.
// Times are totals since the stream opened.
type StreamStats struct {
	// SendStreamWindow and SendConnWindow are the bytes the peer allows
	// this side to send now on the stream and on the connection; -1 when
	// the transport cannot tell.
	SendStreamWindow, SendConnWindow int64
	// RecvStreamWindow and RecvConnWindow are the windows this side
	// advertises to its peer; -1 when unknown.
	RecvStreamWindow, RecvConnWindow int64
	// BlockedStream, BlockedConn and BlockedTCP split the time writes
	// waited by the layer that held them: the stream's send window at
	// zero, the connection's at zero, or neither (so the socket, TCP).
	BlockedStream, BlockedConn, BlockedTCP time.Duration
	// StreamClosedAt and ConnClosedAt are when the stream's and the
	// connection's send windows first reached zero; zero if never.
	StreamClosedAt, ConnClosedAt time.Time
	// StreamHeldAt and ConnHeldAt are when the first closing of each that
	// held began: shut WindowHeldMin or longer, where writes stopped
	// rather than an instant's shutting at the start; zero if none did.
	StreamHeldAt, ConnHeldAt time.Time
	// WindowUpdatesReceived and WindowUpdatesSent count WINDOW_UPDATE
	// frames for this stream (connection-level ones are counted on stream
	// 0 of the connection, StreamIndex 0).
	WindowUpdatesReceived, WindowUpdatesSent uint64
	// Source says how the figures were found: "frames" when this side
	// reads every frame itself (exact), or how they were estimated.
	Source string
}

// ErrNotMultiplexed is DialMux's error for a target whose transport has no
// streams (tcp://, tls://, ws://, wss://).
var ErrNotMultiplexed = errors.New("the target's transport has no streams")

// dialers of the multiplexed transports, set by their files' init so this
// file names none of them.
var (
	dialGRPC  func(ctx context.Context, t Target, opts SocketOptions) (Mux, error)
	dialHTTP2 func(ctx context.Context, t Target, opts SocketOptions) (Mux, error)
)

// DialMux opens a multiplexed connection to t (grpc://, grpcs://, h2c://,
// https://), on which OpenStream opens the streams.
func DialMux(ctx context.Context, t Target, opts SocketOptions) (Mux, error) {
	var dial func(context.Context, Target, SocketOptions) (Mux, error)
	switch t.Protocol {
	case GRPC:
		dial = dialGRPC
	case HTTP2:
		dial = dialHTTP2
	}
	if dial == nil {
		return nil, ErrNotMultiplexed
	}
	return dial(ctx, t, opts)
}

// Multiplexed reports whether t's transport carries streams (DialMux).
func (t Target) Multiplexed() bool { return t.Protocol == GRPC || t.Protocol == HTTP2 }
