package sockstat

import (
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// tally is one socket's running account between two samples: the last
// reading, the kernel's cumulative counters as it last saw them, and the
// zero-window clock. Both samplers keep one per socket (SampledConn for
// our own connections, HostSampler for every socket of a host), so that
// their gauges and counters mean the same.
type tally struct {
	sample                         Sample
	lastRwnd, lastSndbuf, lastBusy time.Duration
	// The zero-window clock: when each window was first seen closed in
	// its current closure (zero while open).
	peerZeroSince, ownZeroSince time.Time
	// onWindow, if set, hears each window closing or reopening.
	onWindow func(w WindowSide, closed bool, now time.Time)
}

// addWriter adds the writer's side of the sample: send queue, probes, the
// peer's window and the kernel's limited times. dt is the time since the
// previous sample.
func (c *tally) addWriter(now time.Time, dt time.Duration, g *Gauges, d *Counters) {
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
		since := c.peerZeroSince
		c.tallyWindow(PeerWindow, smp.PeerWindow, &c.peerZeroSince, now, dt, windowTally{
			&g.PeerWindowMin, &g.HasPeerWindowMin, &g.PeerWindowZeroConns, &d.PeerWindowZero, &d.PeerWindowCloses})
		if since.IsZero() && !c.peerZeroSince.IsZero() {
			g.FirstPeerWindowClose = earliest(g.FirstPeerWindowClose, now)
		}
		if !since.IsZero() && now.Sub(since) >= flow.WindowHeldMin {
			// shut since then, up to now or to a reopening seen now
			g.HeldPeerWindowClose = earliest(g.HeldPeerWindowClose, since)
		}
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
func (c *tally) addReader(now time.Time, dt time.Duration, g *Gauges, d *Counters) {
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
func (c *tally) tallyWindow(w WindowSide, window uint32, closedSince *time.Time, now time.Time, dt time.Duration, t windowTally) {
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
	if c.onWindow != nil {
		c.onWindow(w, zero, now)
	}
}

// addPass takes a pass's gauges and adds its counters' growth: how both
// samplers publish a pass.
func (st *ProtocolStats) addPass(g Gauges, d Counters) {
	st.Gauges = g
	st.Counters.add(d)
	st.PeakSendQueue = max(st.PeakSendQueue, g.LargestSendQueue)
	st.FirstPeerWindowClose = earliest(st.FirstPeerWindowClose, g.FirstPeerWindowClose)
	st.HeldPeerWindowClose = earliest(st.HeldPeerWindowClose, g.HeldPeerWindowClose)
}
