package sockstat

import (
	"sync"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// SampledConn is one connection registered with a Sampler: its Reader, its
// reused Sample, and what the previous sample said, for deltas and window
// transitions. It is the flow.ConnObserver the Sampler's Open returns
// (Closing takes the last sample) and the handle Sampler.Conn gives.
type SampledConn struct {
	flow.Nop // the flow events other than Closing and Closed are of no use here
	s        *Sampler
	info     flow.ConnInfo
	proto    int
	reader   *Reader
	index    int // position in s.conns, under s.mu; -1 once unregistered

	mu                             sync.Mutex // guards the fields below
	done                           bool
	sample                         Sample
	sampled                        bool // sample is a real reading, taken at lastAt
	lastAt                         time.Time
	lastRwnd, lastSndbuf, lastBusy time.Duration
	// The zero-window clock: when each window was first seen closed in
	// its current closure (zero while open).
	peerZeroSince, ownZeroSince time.Time
}

var _ flow.ClosingObserver = (*SampledConn)(nil)

// Latest is the sampler's latest reading of one connection.
type Latest struct {
	// At is when Sample was taken; zero when no pass has read it yet.
	At     time.Time
	Sample Sample
	// PeerWindowClosedSince is when the passes first saw the peer window
	// (of a writing connection) at zero in its current closure; zero
	// while it is open or unknown. OwnWindowClosedSince is the same for
	// the window a reading connection advertises.
	PeerWindowClosedSince, OwnWindowClosedSince time.Time
}

// Latest returns what the last pass read of the connection.
func (c *SampledConn) Latest() Latest {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.sampled {
		return Latest{}
	}
	return Latest{At: c.lastAt, Sample: c.sample, PeerWindowClosedSince: c.peerZeroSince, OwnWindowClosedSince: c.ownZeroSince}
}

// Closing takes the connection's last sample, while its socket is still
// open, and unregisters it (flow.ClosingObserver).
func (c *SampledConn) Closing() {
	now := time.Now()
	var g Gauges
	var d Counters
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return
	}
	c.sampleLocked(now, &g, &d)
	c.done = true
	c.mu.Unlock()
	c.s.unregister(c)
	c.s.publishFinal(c.proto, g, d)
}

// Closed unregisters the connection if Closing was not called (the socket
// is closed by then, so there is nothing left to read).
func (c *SampledConn) Closed(error) {
	c.mu.Lock()
	already := c.done
	c.done = true
	c.mu.Unlock()
	if !already {
		c.s.unregister(c)
	}
}

// samplePass is one pass's reading of the connection, unless it is done;
// it returns the fields the kernel provided.
func (c *SampledConn) samplePass(now time.Time, g *Gauges, d *Counters) Fields {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return 0
	}
	c.sampleLocked(now, g, d)
	return c.sample.Has
}

// sampleLocked reads the socket once and adds what it saw to g and d.
// c.mu must be held.
func (c *SampledConn) sampleLocked(now time.Time, g *Gauges, d *Counters) {
	if err := c.reader.Read(&c.sample); err != nil {
		return // closed under us: the connection is about to unregister
	}
	dt := max(now.Sub(c.lastAt), 0)
	c.lastAt, c.sampled = now, true
	g.Sampled++
	if c.info.Writes {
		c.addWriter(now, dt, g, d)
	}
	if c.info.Reads {
		c.addReader(now, dt, g, d)
	}
}

// addWriter adds the writer's side of the sample: send queue, probes, the
// peer's window and the kernel's limited times.
func (c *SampledConn) addWriter(now time.Time, dt time.Duration, g *Gauges, d *Counters) {
	smp := &c.sample
	if smp.Has&FieldSendQueue != 0 {
		g.SendQueue += smp.SendQueue
		g.LargestSendQueue = max(g.LargestSendQueue, smp.SendQueue)
	}
	if smp.Has&FieldSendQueueNotSent != 0 {
		g.Unsent += smp.SendQueueNotSent
	}
	if smp.Has&FieldBasic != 0 {
		g.Probes += int(smp.Probes)
	}
	if smp.Has&FieldPeerWindow != 0 {
		c.tallyWindow(PeerWindow, smp.PeerWindow, &c.peerZeroSince, now, dt, windowTally{
			&g.PeerWindowMin, &g.HasPeerWindowMin, &g.PeerWindowZeroConns, &d.PeerWindowZero, &d.PeerWindowCloses})
	}
	if smp.Has&FieldLimited != 0 {
		// The kernel's counters are cumulative since the connection
		// started: add what grew since the last sample.
		d.RwndLimited += max(smp.RwndLimited-c.lastRwnd, 0)
		d.SndbufLimited += max(smp.SndbufLimited-c.lastSndbuf, 0)
		d.Busy += max(smp.BusyTime-c.lastBusy, 0)
		c.lastRwnd, c.lastSndbuf, c.lastBusy = smp.RwndLimited, smp.SndbufLimited, smp.BusyTime
	}
}

// addReader adds the reader's side of the sample: receive queue and the
// window this side advertises.
func (c *SampledConn) addReader(now time.Time, dt time.Duration, g *Gauges, d *Counters) {
	smp := &c.sample
	if smp.Has&FieldRecvQueue != 0 {
		g.RecvQueue += smp.RecvQueue
	}
	if smp.Has&FieldOwnWindow != 0 {
		c.tallyWindow(OwnWindow, smp.OwnWindow, &c.ownZeroSince, now, dt, windowTally{
			&g.OwnWindowMin, &g.HasOwnWindowMin, &g.OwnWindowZeroConns, &d.OwnWindowZero, &d.OwnWindowCloses})
	}
}

// windowTally points at one window's figures in a pass's Gauges and
// Counters: the peer window's or the own window's.
type windowTally struct {
	min       *uint32
	hasMin    *bool
	zeroConns *int
	zeroTime  *time.Duration
	closes    *int
}

// tallyWindow adds one window of the sample to the pass: the minimum, the
// zero-window clock (closedSince: when it closed, zero while open; the
// event when it closes or reopens) and the time it spent at zero.
func (c *SampledConn) tallyWindow(w WindowSide, window uint32, closedSince *time.Time, now time.Time, dt time.Duration, t windowTally) {
	if !*t.hasMin || window < *t.min {
		*t.min, *t.hasMin = window, true
	}
	zero := window == 0
	if zero {
		*t.zeroConns++
		*t.zeroTime += dt
	}
	if zero == !closedSince.IsZero() {
		return
	}
	if zero {
		*closedSince = now
		*t.closes++
	} else {
		*closedSince = time.Time{}
	}
	c.s.notify(c, w, zero, now)
}
