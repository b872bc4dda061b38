package flow

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
)

// StreamBuffer counts the bytes a server's HTTP/2 streams received (the
// payload of the peers' DATA frames, as they pass the frame tap in front of
// the HTTP/2 server) that its sessions have not read yet: what sits in the
// server's stream buffers, where no socket statistic sees it (x/net's body
// pipes, grpc-go's receive buffers, and the framer's read buffer before
// them). The count is exact, not a window estimate: both servers return
// window in batches, so a window lags what was read by up to a threshold.
// A stream reset (RST_STREAM, either way) takes its bytes off at once:
// the servers drop them, or hand them to a session whose stream is gone.
// Bytes a stream ended with unread leave when its session releases it,
// or with the connection.
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
// off the total: what a closed connection held is gone. A server's tap
// counts per stream (Open, ReceivedOn, Reset), and each session reads
// from its own (ReadOn, once it knows its stream's id: Claim), so that a
// reset takes the stream's bytes off at once. A client's send side
// counts the other way round and per connection: what Send took comes in
// (Received), what its tap sees go out leaves (Read).
type ConnBuffer struct {
	mu      sync.Mutex
	total   *StreamBuffer
	n       int64
	closed  bool
	streams map[uint32]*bufferedStream // the peer's streams, by id, until reset or released
}

// bufferedStream is one stream's share of its connection's count.
type bufferedStream struct {
	n         int64
	arrivedAt time.Time // when the tap last saw DATA payload of it (LastArrival)
	hello     string    // its hello's HelloKey (Hello); NoHello: none seen
	claimed   bool      // a session took it (Claim)
	firstData bool      // its first DATA frame began (HelloWanted)
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

// Open starts stream id's count (its HEADERS passed the tap): DATA on a
// stream not open, or no longer (reset), is not counted.
func (c *ConnBuffer) Open(id uint32) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.streams[id] != nil {
		return
	}
	if c.streams == nil {
		c.streams = map[uint32]*bufferedStream{}
	}
	c.streams[id] = &bufferedStream{}
}

// ReceivedOn counts n DATA payload bytes of stream id that passed the tap.
func (c *ConnBuffer) ReceivedOn(id uint32, n int) { c.addOn(id, int64(n)) }

// ReadOn counts n bytes a session read from stream id; a stream already
// reset counts nothing (its bytes left at the reset).
func (c *ConnBuffer) ReadOn(id uint32, n int) { c.addOn(id, -int64(n)) }

func (c *ConnBuffer) addOn(id uint32, n int64) {
	if c == nil || n == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.streams[id]
	if c.closed || st == nil {
		return
	}
	st.n += n
	if n > 0 {
		st.arrivedAt = time.Now()
	}
	c.n += n
	c.total.n.Add(n)
}

// LastArrival is when the tap last saw DATA payload of stream id (zero for
// none, or a stream not open, reset or released), read or not. A gRPC
// stream's session counts it as activity in its idle watch: grpc-go hands
// a message over only once all of it has arrived, and a 16 MiB message at
// 50 kB/s is minutes of bytes moving with no Recv returning.
func (c *ConnBuffer) LastArrival(id uint32) time.Time {
	if c == nil {
		return time.Time{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.streams[id]; st != nil && !c.closed {
		return st.arrivedAt
	}
	return time.Time{}
}

// Reset takes stream id's bytes off at once: the stream was reset (by
// either side), and what it holds will never be a session's to read.
// Release is the same for a stream whose session is done with it.
func (c *ConnBuffer) Reset(id uint32) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.streams[id]; st != nil && !c.closed {
		c.n -= st.n
		c.total.n.Add(-st.n)
		delete(c.streams, id)
	}
}

// Release: see Reset.
func (c *ConnBuffer) Release(id uint32) { c.Reset(id) }

// Hello records the HelloKey of the hello at the start of stream id
// (decoded by the tap), for Claim.
func (c *ConnBuffer) Hello(id uint32, key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.streams[id]; st != nil && st.hello == NoHello {
		st.hello = key
	}
}

// HelloWanted reports whether a DATA frame of stream id that begins now
// is the stream's first, which a hello starts: true once per stream, so a
// tap looks for a hello in one frame only.
func (c *ConnBuffer) HelloWanted(id uint32) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.streams[id]
	if st == nil || st.firstData {
		return false
	}
	st.firstData = true
	return true
}

// NoHello is Claim's key for a session whose stream began with no hello.
const NoHello = ""

// HelloKey tells apart the streams of one connection by their hellos:
// the run and the stream's place on the connection.
func HelloKey(h Hello) string { return fmt.Sprintf("%d %s", h.Stream, h.RunID) }

// Claim finds the open stream whose hello has key (NoHello: a stream
// whose first DATA held none) and that no session took yet (the
// earliest), takes it and returns its id; 0 when there is none.
func (c *ConnBuffer) Claim(key string) uint32 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var found uint32
	for id, st := range c.streams {
		if !st.claimed && st.hello == key && (key != NoHello || st.firstData) && (found == 0 || id < found) {
			found = id
		}
	}
	if found != 0 {
		c.streams[found].claimed = true
	}
	return found
}

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
		c.n, c.closed, c.streams = 0, true, nil
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
