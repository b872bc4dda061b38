package flow

import (
	"google.golang.org/protobuf/proto"

	"sync"
	"sync/atomic"
)

// StreamBuffer counts the bytes a server's HTTP/2 streams received (the
// payload of the peers' DATA frames, as they pass the frame tap in front of
// the HTTP/2 server) that its sessions have not read yet: what sits in the
// server's stream buffers, where no socket statistic sees it (x/net's body
// pipes, grpc-go's receive buffers, and the framer's read buffer before
// them). The count is exact, not a window estimate: both servers return
// window in batches, so a window lags what was read by up to a threshold.
// Bytes the server drops unread (a stream reset or ended with data still
// buffered) stay counted until their connection closes.
type StreamBuffer struct{ n atomic.Int64 }

// Bytes is the total over the open connections; 0 for a nil StreamBuffer.
func (b *StreamBuffer) Bytes() int64 {
	if b == nil {
		return 0
	}
	return b.n.Load()
}

// Conn is one connection's share of b, to feed from its tap and its
// sessions; nil for a nil b (then counting nothing).
func (b *StreamBuffer) Conn() *ConnBuffer {
	if b == nil {
		return nil
	}
	return &ConnBuffer{total: b}
}

// ConnBuffer is one connection's received-but-unread bytes. Its tap adds
// what passes, its sessions take what they read, and Close takes the rest
// off the total: what a closed connection held is gone. A client's send
// side counts the other way round: what Send took comes in (Received),
// what its tap sees go out leaves (Read).
type ConnBuffer struct {
	mu     sync.Mutex
	total  *StreamBuffer
	n      int64
	closed bool
}

func (c *ConnBuffer) add(n int64) {
	if c == nil || n == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.n += n
	c.total.n.Add(n)
}

// Received counts n DATA payload bytes that passed the tap.
func (c *ConnBuffer) Received(n int) { c.add(int64(n)) }

// Read counts n bytes a session read from one of the connection's streams.
func (c *ConnBuffer) Read(n int) { c.add(-int64(n)) }

// Close takes the connection's bytes off the total; later counts are
// ignored (a handler still reading after the connection went).
func (c *ConnBuffer) Close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.total.n.Add(-c.n)
		c.n, c.closed = 0, true
	}
}

// grpcWireSize is what one received message took out of grpc-go's receive
// buffer: its 5-byte length prefix and its encoding (uncompressed: the
// service compresses nothing, and Go's encoding of a decoded message is
// the one it was sent in).
func grpcWireSize(m proto.Message) int { return 5 + proto.Size(m) }

// grpcQueued is the process's gRPC clients' queued bytes: a client is
// one per process, like its other metrics.
var grpcQueued StreamBuffer

// GRPCQueuedBytes is what this process's gRPC streams' Send calls took
// (each message as gRPC frames it: its 5-byte prefix and encoding) that
// grpc-go has not yet written to the connection as DATA: grpc-go's send
// buffers, which hold up to a stream's write quota (64 KiB) beyond its
// flow-control window, past the point where the session counts the write
// as done and where no socket statistic sees it. A client's
// (bp_stream_queued_bytes); a server's Sends are not counted.
func GRPCQueuedBytes() int64 { return grpcQueued.Bytes() }
