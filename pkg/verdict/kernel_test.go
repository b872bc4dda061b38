package verdict

import (
	"net"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// TestObserverReadsSampler: the verdict reads a connection's send queue
// from the socket sampler's passes, not from the socket. A write blocks on
// a loopback connection whose peer does not read; the ongoing block the
// verdict sees carries the send queue the sampler read.
func TestObserverReadsSampler(t *testing.T) {
	if !sockstat.Supported() || sockstat.KernelFields()&sockstat.FieldSendQueue == 0 {
		t.Skip("kernel socket statistics not available here")
	}
	nc := unreadSocket(t)

	sampler := sockstat.NewSampler(sockstat.SamplerOptions{Interval: time.Hour}) // passes by hand
	o := New(Options{Kernel: sampler, StallThreshold: 50 * time.Millisecond, Interval: 10 * time.Millisecond})
	info := flow.ConnInfo{Protocol: flow.TCP, Conn: nc, Writes: true}
	// The verdict opens first: it finds the sampler's handle at its pass.
	c, sc := o.Open(info), sampler.Open(info)
	defer sc.Closed(nil)
	defer c.Closed(nil)

	c.Wrote(16<<10, 0, false) // unacknowledged: pending
	c.(flow.WriteStartObserver).WriteStarting(time.Now())
	go nc.Write(make([]byte, 16<<20)) // blocks once the buffers are full
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		sampler.Sample(time.Now())
		o.Pass(time.Now())
	}
	tls := o.Timelines(time.Now())
	if len(tls) != 1 || !tls[0].Kernel {
		t.Fatalf("timelines %+v: want one, with the kernel read", tls)
	}
	blocks := tls[0].Blocks
	if len(blocks) != 1 || !blocks[0].Ongoing || blocks[0].SendQueue <= 0 {
		t.Errorf("blocks %+v: want one ongoing block with the sampled send queue", blocks)
	}
	// With the kernel telling the peer's window, the verdict knows that it
	// knows: a stall's missing zero window then means an open window.
	if known := sockstat.KernelFields()&sockstat.FieldPeerWindow != 0; tls[0].PeerWindowKnown != known {
		t.Errorf("PeerWindowKnown %v, the kernel telling the peer's window %v", tls[0].PeerWindowKnown, known)
	}
}

// testStream is a flow.StreamConn with no figures: it only marks a
// connection as a stream, for the verdict's count of shared sockets.
type testStream struct{ index int }

func (s testStream) StreamIndex() int              { return s.index }
func (s testStream) StreamLayer() flow.StreamStats { return flow.StreamStats{} }

// TestObserverSharedSocketSendQueue: two streams write on one real
// loopback socket whose peer does not read; the socket's send queue holds
// both streams' bytes, so each stream's blocked write is given half of
// it: summed over the streams, the socket's queue counts once.
func TestObserverSharedSocketSendQueue(t *testing.T) {
	if !sockstat.Supported() || sockstat.KernelFields()&sockstat.FieldSendQueue == 0 {
		t.Skip("kernel socket statistics not available here")
	}
	nc := unreadSocket(t)

	sampler := sockstat.NewSampler(sockstat.SamplerOptions{Interval: time.Hour}) // passes by hand
	o := New(Options{Kernel: sampler, StallThreshold: 50 * time.Millisecond, Interval: 10 * time.Millisecond})
	var streams []flow.ConnObserver
	for k := range 2 {
		info := flow.ConnInfo{Protocol: flow.TCP, Conn: nc, Writes: true, Stream: testStream{index: k}}
		c, sc := o.Open(info), sampler.Open(info)
		defer sc.Closed(nil)
		defer c.Closed(nil)
		c.Wrote(16<<10, 0, false) // unacknowledged: pending
		c.(flow.WriteStartObserver).WriteStarting(time.Now())
		streams = append(streams, c)
	}
	go nc.Write(make([]byte, 16<<20)) // blocks once the buffers are full
	var socketQueue int
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		sampler.Sample(time.Now())
		o.Pass(time.Now())
		socketQueue = sampler.Conn(nc).Latest().Sample.SendQueue
	}
	tls := o.Timelines(time.Now())
	if len(tls) != 2 {
		t.Fatalf("%d timelines, want 2", len(tls))
	}
	var sum int64
	for i, tl := range tls {
		if len(tl.Blocks) != 1 || tl.Blocks[0].SendQueue <= 0 {
			t.Fatalf("stream %d: blocks %+v, want one with a share of the send queue", i, tl.Blocks)
		}
		sum += tl.Blocks[0].SendQueue
	}
	if d := int64(socketQueue) - sum; d < 0 || d > 1 {
		t.Errorf("the streams' send queues add up to %d bytes, the socket's is %d: want it counted once (within rounding)", sum, socketQueue)
	}
}

// unreadSocket is a real loopback connection whose peer never reads, so
// that its send queue fills; both ends are closed at cleanup.
func unreadSocket(t *testing.T) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	return nc
}
