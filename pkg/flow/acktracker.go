package flow

import "sync/atomic"

// AckTracker keeps the acks a peer sends for what this side wrote: the
// bytes acknowledged so far, the observer's Acked and in-pipe events, and
// at close the in-pipe bytes that were never acknowledged. The session and
// a relay's two sides each hold one. It is safe for concurrent use; the
// zero value is not ready: use NewAckTracker.
type AckTracker struct {
	obs    ConnObserver
	inPipe bool
	acked  atomic.Int64
	poke   chan struct{}
}

// NewAckTracker reports to obs; inPipe as for NewWriteObserver.
func NewAckTracker(obs ConnObserver, inPipe bool) *AckTracker {
	return &AckTracker{obs: obs, inPipe: inPipe, poke: make(chan struct{}, 1)}
}

// Acked is the bytes the peer acknowledged so far.
func (a *AckTracker) Acked() int64 { return a.acked.Load() }

// Ack records an ack of total bytes (cumulative) and wakes a waiter of
// Changed. An ack at or below the last one changes nothing.
func (a *AckTracker) Ack(total int64) {
	if prev := a.acked.Load(); total > prev {
		a.acked.Store(total)
		a.obs.Acked(total - prev)
		if a.inPipe {
			a.obs.InPipe(-(total - prev))
		}
	}
	select {
	case a.poke <- struct{}{}:
	default:
	}
}

// Changed delivers a value after an ack arrived; a waiter reads Acked
// again then.
func (a *AckTracker) Changed() <-chan struct{} { return a.poke }

// Drain is called once at close with the payload bytes written in all:
// what the peer never acknowledged leaves the in-pipe figure with the
// connection.
func (a *AckTracker) Drain(written int64) {
	if rest := written - a.acked.Load(); a.inPipe && rest != 0 {
		a.obs.InPipe(-rest)
	}
}
