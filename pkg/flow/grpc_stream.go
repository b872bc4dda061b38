package flow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/go-backpressure/go-backpressure/proto/backpressure/v1"
)

// grpcRPC is the part of a gRPC stream, client's or server's, a
// grpcStream drives.
type grpcRPC interface {
	Send(*pb.Message) error
	Recv() (*pb.Message, error)
}

// grpcLinger bounds how long a clean close waits for the peer to end its
// side of the stream before the stream is cancelled (RST_STREAM).
const grpcLinger = time.Second

// grpcStream is one RPC of the Backpressure service as a Conn: each
// Message is a payload, an ack or a fin; its hello was the first. It is
// a StreamConn: the connection's h2Tap knows its windows, and its
// sendClock where its Sends waited.
type grpcStream struct {
	rpc   grpcRPC
	conn  *tapConn
	index int // the hello's stream
	id    atomic.Uint32
	clock sendClock

	wmu        sync.Mutex // one Send at a time: grpc-go's streams allow no more
	pendingAck atomic.Pointer[pb.Message]
	rest       []byte // payload of the last message not yet read

	// end closes the stream the way err calls for: the client's cancels
	// it or ends its sending side, the server's returns the handler.
	end       func(err error)
	closeOnce sync.Once
	closed    atomic.Pointer[StreamStats] // the figures when it closed
	ended     chan struct{}               // Recv saw the stream end
	endedOnce sync.Once
	recv      recvState
}

// recvState is what a server's stream knows of its Recv calls when the
// RPC ends, so that the end is told by its true cause. grpc-go ends a
// server's stream itself when a Recv fails (a message over the limit: it
// writes RESOURCE_EXHAUSTED before Recv returns), and the RPC's context
// ends with it; taken alone, that ending looked like the client's reset,
// and under load a message over the limit was counted reason reset, not
// too_large (1 e2e run in 20 beside a busy loop).
type recvState struct {
	mu   sync.Mutex
	in   bool          // a Recv in progress
	err  error         // the first Recv that failed (io.EOF included)
	done chan struct{} // made by a waiter, closed when the Recv in progress returns
}

// begin and end bracket a Recv.
func (r *recvState) begin() {
	r.mu.Lock()
	r.in = true
	r.mu.Unlock()
}

func (r *recvState) end(err error) {
	r.mu.Lock()
	r.in = false
	if err != nil && r.err == nil {
		r.err = err
	}
	if r.done != nil {
		close(r.done)
		r.done = nil
	}
	r.mu.Unlock()
}

// cause is why the RPC ended, once its context has: a failed Recv's error
// (waiting at most wait for a Recv in progress, which returns once the
// stream is gone), else gone. A Recv that saw the client's reset gives the
// reason gone gives, reset; one that ended with io.EOF (the client's
// END_STREAM) says nothing of why the RPC went.
func (r *recvState) cause(wait time.Duration, gone error) error {
	r.mu.Lock()
	if r.in {
		if r.done == nil {
			r.done = make(chan struct{})
		}
		d := r.done
		r.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-d:
		case <-t.C:
		}
		t.Stop()
		r.mu.Lock()
	}
	err := r.err
	r.mu.Unlock()
	if err == nil || errors.Is(err, io.EOF) {
		return gone
	}
	return grpcError(err)
}

var (
	_ Conn        = (*grpcStream)(nil)
	_ StreamConn  = (*grpcStream)(nil)
	_ Aborter     = (*grpcStream)(nil)
	_ errorCloser = (*grpcStream)(nil)
	_ HalfCloser  = (*grpcStream)(nil)
)

func newGRPCStream(rpc grpcRPC, conn *tapConn, index int) *grpcStream {
	s := &grpcStream{rpc: rpc, conn: conn, index: index, ended: make(chan struct{})}
	s.clock.id = s.streamID
	conn.sends.add(&s.clock)
	return s
}

func (s *grpcStream) Protocol() Protocol  { return GRPC }
func (s *grpcStream) SpeaksControl() bool { return true }
func (s *grpcStream) NetConn() net.Conn   { return s.conn.raw }
func (s *grpcStream) StreamIndex() int    { return s.index }

// streamID is the stream's HTTP/2 id, once the tap has seen its hello.
func (s *grpcStream) streamID() uint32 {
	if id := s.id.Load(); id != 0 {
		return id
	}
	id := s.conn.tap.claim(s.index)
	if id != 0 && !s.id.CompareAndSwap(0, id) {
		s.conn.tap.release(id) // another caller claimed one first
	}
	return s.id.Load()
}

// lastArrival is when the connection's tap last saw this stream's DATA
// (see ConnBuffer.LastArrival), which the session's idle watch counts as
// activity (an arrivalClock). A client's stream counts none.
func (s *grpcStream) lastArrival() time.Time {
	if s.conn.buf == nil {
		return time.Time{}
	}
	return s.conn.buf.LastArrival(s.streamID())
}

// readOn takes n bytes a server's stream read off its connection's
// stream buffer count (a client counts none).
func (s *grpcStream) readOn(n int) {
	if s.conn.buf != nil {
		s.conn.buf.ReadOn(s.streamID(), n)
	}
}

// send sends m; on a client, a message Send took is in grpc-go's send
// buffers until the tap sees its DATA go (the connection's queued count).
func (s *grpcStream) send(m *pb.Message) error {
	err := s.rpc.Send(m)
	if err == nil {
		s.conn.queued.Received(grpcWireSize(m))
	}
	return err
}

// Read returns the next payload bytes (a message in read-size pieces) or
// the next control message.
func (s *grpcStream) Read(p []byte) (int, Control, error) {
	if len(s.rest) > 0 {
		n := copy(p, s.rest)
		s.rest = s.rest[n:]
		return n, Control{}, nil
	}
	s.recv.begin()
	m, err := s.rpc.Recv()
	s.recv.end(err)
	if err != nil {
		s.markEnded()
		if errors.Is(err, io.EOF) {
			return 0, Control{}, io.EOF
		}
		return 0, Control{}, grpcError(err)
	}
	s.readOn(grpcWireSize(m))
	switch k := m.GetKind().(type) {
	case *pb.Message_Payload:
		n := copy(p, k.Payload)
		s.rest = k.Payload[n:]
		return n, Control{}, nil
	case *pb.Message_Ack:
		c := Control{Type: Ack, Bytes: k.Ack.GetBytes(), SeenFrom: k.Ack.GetSeenFrom()}
		if k.Ack.GetViaSet() || len(k.Ack.GetVia()) > 0 {
			c.Via = append([]string{}, k.Ack.GetVia()...)
		}
		return 0, c, checkControl(c)
	case *pb.Message_Fin:
		c := Control{Type: Fin, Bytes: k.Fin.GetBytes()}
		return 0, c, checkControl(c)
	case *pb.Message_Hello:
		return 0, Control{}, protocolErrorf("a second hello on the stream")
	}
	return 0, Control{}, protocolErrorf("an empty message (no payload, ack, fin or hello)")
}

func checkControl(c Control) error {
	if c.Bytes < 0 {
		return protocolErrorf("control message %s with negative bytes %d", c.Type, c.Bytes)
	}
	return nil
}

// WritePayload sends p as one message. It blocks while grpc-go does: on
// its write quota, which refills only as its writer gets the bytes past
// the stream's window, the connection's and the socket.
func (s *grpcStream) WritePayload(p []byte) (int, error) {
	s.conn.sends.begin(&s.clock)
	s.wmu.Lock()
	err := s.send(&pb.Message{Kind: &pb.Message_Payload{Payload: p}})
	s.unlockWrites()
	s.conn.sends.end(&s.clock)
	if err != nil {
		return 0, s.sendError(err)
	}
	return len(p), nil
}

// WriteControl sends an ack or a fin.
func (s *grpcStream) WriteControl(c Control) error {
	m := &pb.Message{}
	switch c.Type {
	case Ack:
		m.Kind = &pb.Message_Ack{Ack: &pb.Ack{Bytes: c.Bytes, Via: c.Via, ViaSet: c.Via != nil, SeenFrom: c.SeenFrom}}
	case Fin:
		m.Kind = &pb.Message_Fin{Fin: &pb.Fin{Bytes: c.Bytes}}
	default:
		return fmt.Errorf("unknown control message type %q", c.Type)
	}
	if c.Type == Ack {
		// An ack never waits behind a payload Send held by flow control:
		// the reader that sends it would stop reading, and a hop that
		// ties the streams together (HAProxy's demultiplexer) could then
		// hold the very window that Send waits on. Acks are cumulative,
		// so the latest pending one stands for all; the Send in progress
		// sends it when it returns.
		s.pendingAck.Store(m)
		if !s.wmu.TryLock() {
			return nil
		}
		s.unlockWrites()
		return nil
	}
	s.wmu.Lock()
	err := s.send(m)
	s.unlockWrites()
	if err != nil {
		return s.sendError(err)
	}
	return nil
}

// unlockWrites sends the pending ack, if any, and releases the write
// lock; an ack stored while it was held is sent before or after, never lost.
func (s *grpcStream) unlockWrites() {
	for {
		if m := s.pendingAck.Swap(nil); m != nil {
			_ = s.send(m) // a failed stream fails the next Send or Recv too
		}
		s.wmu.Unlock()
		if s.pendingAck.Load() == nil || !s.wmu.TryLock() {
			return
		}
	}
}

// sendError: a client's Send says io.EOF when the stream has ended, the
// reason being Recv's to tell.
func (s *grpcStream) sendError(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("send: the stream ended: %w", ErrPeerClosed)
	}
	return grpcError(err)
}

// CloseWrite ends this side's messages (a client's END_STREAM); a
// server's side ends with its handler.
func (s *grpcStream) CloseWrite() error {
	if cs, ok := s.rpc.(interface{ CloseSend() error }); ok {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		return cs.CloseSend()
	}
	return nil
}

// beginClose ends the stream as err calls for: cleanly (nil) or with a
// status that says why. It never waits for a Send in progress.
func (s *grpcStream) beginClose(err error) {
	s.closeOnce.Do(func() {
		last := s.StreamLayer()
		s.closed.Store(&last) // what StreamLayer says from now on
		s.end(err)
		if id := s.id.Load(); id != 0 {
			s.conn.tap.release(id)
			s.conn.buf.Release(id) // what it left unread goes with it
		}
		s.conn.sends.remove(&s.clock)
	})
}

// endClose waits, at most grpcLinger, for the peer to end the stream.
func (s *grpcStream) endClose() error {
	t := time.NewTimer(grpcLinger)
	defer t.Stop()
	select {
	case <-s.ended:
	case <-t.C:
	}
	s.end(context.Canceled) // a no-op once the stream ended
	return nil
}

func (s *grpcStream) closeWithError(err error) error {
	s.beginClose(err)
	return s.endClose()
}

// Close ends the stream cleanly, lingering in the background.
func (s *grpcStream) Close() error {
	s.beginClose(nil)
	go s.endClose()
	return nil
}

// Abort ends the stream so that the peer sees an error: RST_STREAM from a
// client, a status with the reason from a server.
func (s *grpcStream) Abort(reason string) { s.beginClose(errors.New(reason)) }

// markEnded records that the stream has ended, for endClose.
func (s *grpcStream) markEnded() { s.endedOnce.Do(func() { close(s.ended) }) }

// StreamLayer is the stream's flow control as the connection's frames
// show it, and its Sends' waits split by layer.
func (s *grpcStream) StreamLayer() StreamStats {
	if last := s.closed.Load(); last != nil {
		return *last
	}
	v, ok := s.conn.tap.view(s.streamID())
	b := s.conn.sends.totals(&s.clock)
	st := StreamStats{SendStreamWindow: v.sendStream, SendConnWindow: v.sendConn,
		RecvStreamWindow: v.recvStream, RecvConnWindow: v.recvConn,
		BlockedStream: b[layerStream], BlockedConn: b[layerConn], BlockedTCP: b[layerTCP],
		StreamClosedAt: v.streamClosedAt, ConnClosedAt: v.connClosedAt,
		StreamHeldAt: v.streamHeldAt, ConnHeldAt: v.connHeldAt,
		WindowUpdatesReceived: v.updatesIn, WindowUpdatesSent: v.updatesOut,
		Source: "frames (every HTTP/2 frame of the connection read on this side, above TLS; waits split by 5 ms samples)"}
	if s.index == 0 {
		st.WindowUpdatesReceived += v.connUpdatesIn
		st.WindowUpdatesSent += v.connUpdatesOut
	}
	if !ok {
		st.Source = "frames, stream not (yet) seen: its windows unknown"
	}
	return st
}

// grpcError turns a gRPC status into the error of the reason it stands
// for (ErrorReason), keeping its code and message.
func grpcError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var kind error
	switch msg := st.Message(); st.Code() {
	case codes.ResourceExhausted:
		kind = ErrTooLarge
	case codes.InvalidArgument:
		kind = ProtocolError{errors.New("the peer refused the stream")}
	case codes.DeadlineExceeded:
		kind = os.ErrDeadlineExceeded
		if strings.HasPrefix(msg, "idle") {
			kind = ErrIdle
		}
	case codes.Canceled:
		kind = syscall.ECONNRESET // the peer reset the stream (RST_STREAM CANCEL)
	case codes.Unavailable:
		kind = ErrPeerClosed
	case codes.Internal:
		if strings.Contains(msg, "RST_STREAM") {
			kind = syscall.ECONNRESET
		}
	}
	if kind == nil {
		return fmt.Errorf("grpc: %s: %s", st.Code(), st.Message())
	}
	return fmt.Errorf("grpc: %s: %s: %w", st.Code(), st.Message(), kind)
}

// grpcStatus is the status a server's stream ends with for err.
func grpcStatus(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Unknown
	switch reason := ErrorReason(err); {
	case errors.Is(err, context.Canceled):
		code = codes.Unavailable // shutdown
	case reason == "too_large":
		code = codes.ResourceExhausted
	case reason == "protocol", reason == "hello":
		code = codes.InvalidArgument
	case reason == "idle", reason == "timeout", reason == "drain_timeout":
		code = codes.DeadlineExceeded
	case reason == "payload_memory":
		code = codes.Unavailable
	case reason == "peer_closed", reason == "reset":
		code = codes.Aborted
	}
	return status.Error(code, ErrorReason(err)+": "+err.Error())
}
