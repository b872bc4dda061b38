package verdict

import (
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// findKernel looks up the sampler's handle on the connection. The sampler
// registers a connection in its own Open, which may come after this
// observer's: a connection not found at Open is looked up again at the
// next pass.
func (c *conn) findKernel() {
	if c.kernel == nil && c.o.opts.Kernel != nil && c.socket != nil {
		c.kernel = c.o.opts.Kernel.Conn(c.socket)
	}
}

// readKernel takes the sampler's latest sample of a connection that looks
// stopped: its send queue, for the blocked write it falls in, and the
// sampler's zero-window clock, for when the next hop closed its window
// during the stall st (nil: none open). c.mu must be held.
func (c *conn) readKernel(st *Stall) {
	c.findKernel()
	if c.kernel == nil {
		return
	}
	latest := c.kernel.Latest()
	if latest.At.IsZero() || latest.At.Equal(c.lastSampleAt) {
		return // no pass since the last look
	}
	c.lastSampleAt = latest.At
	at, smp := c.o.since(latest.At), &latest.Sample
	sq := int64(-1)
	if smp.Has&sockstat.FieldSendQueue != 0 {
		sq = int64(smp.SendQueue) / c.sharing()
	}
	c.ring[c.nRing%ringSize] = kSample{at: at, sendQueue: sq}
	if smp.Has&sockstat.FieldPeerWindow != 0 {
		c.peerWindowKnown = true
	}
	c.nRing++
	if latest.PeerWindowClosedSince.IsZero() || !c.pending {
		return
	}
	// The window closed at closed, or, if that was before these bytes
	// were pending, is seen closed since then at this sample.
	closed := c.o.since(latest.PeerWindowClosedSince)
	if closed < c.pendingSince {
		closed = at
	}
	if c.peerZeroAt < 0 {
		c.peerZeroAt = closed
	}
	if st != nil && st.PeerWindowZeroAt < 0 {
		st.PeerWindowZeroAt = closed
	}
}

// sharing is how many open writing streams share the connection's socket
// (1 for a connection of its own). The socket's send queue holds all of
// their bytes, interleaved in frames, so each is given an equal share:
// summed over the streams, the queue counts once. c.mu must be held; it
// takes o.mu (never held while a conn's mu is taken).
func (c *conn) sharing() int64 {
	if !c.stream {
		return 1
	}
	c.o.mu.Lock()
	defer c.o.mu.Unlock()
	return int64(max(c.o.streamSockets[c.socket], 1))
}
