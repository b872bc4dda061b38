package verdict

import (
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// ackPoint is one ack that moved, as the client saw it arrive: when, the
// bytes the server had read (the ack's count), and the bytes the client
// had written by then.
type ackPoint struct {
	at             time.Duration
	acked, written int64
}

// pushAck keeps p as the latest ack that moved. c.mu must be held.
func (c *conn) pushAck(p ackPoint) {
	copy(c.hist[1:], c.hist[:len(c.hist)-1])
	c.hist[0] = p
	c.nHist = min(c.nHist+1, len(c.hist))
}

// placeStop places a stop from the last acks that moved (latest first).
// In bytes it is exact: the last ack's count is what the server had read
// when it stopped (the acker sends the count whenever it changed, so a
// stopped reader's last ack is its final count). In time it lies between
// the ack before and that one (within: the gap between them): the server
// read from the ack before's count to the last one's at the rate it read
// before, which places it in that gap; without that rate, one ack interval
// iv before the last ack. The bytes written then are interpolated between
// the two acks' written counts, and are never below what was read (nothing
// is read before it is written) nor above what was written when the last
// ack came.
func placeStop(hist []ackPoint, iv time.Duration) (at time.Duration, written int64, within time.Duration) {
	last := hist[0]
	if len(hist) < 2 {
		// One ack only: nothing says how much was written at the stop;
		// the bytes read then are the least it can be.
		return max(last.at-iv, 0), last.acked, iv
	}
	prev := hist[1]
	at = max(last.at-iv, prev.at)
	if len(hist) >= 3 {
		if before := hist[2]; prev.at > before.at && prev.acked > before.acked {
			rate := float64(prev.acked-before.acked) / float64(prev.at-before.at)
			at = prev.at + time.Duration(float64(last.acked-prev.acked)/rate)
			at = min(max(at, prev.at), last.at)
		}
	}
	written = prev.written
	if span := last.at - prev.at; span > 0 {
		part := float64(at-prev.at) / float64(span)
		written += int64(part * float64(last.written-prev.written))
	}
	return at, min(max(written, last.acked), last.written), last.at - prev.at
}

// stalledPart is how much of from..to fell inside the connection's stalls
// (an open stall lasting at least until to): the part of a blocked write
// that waited for a stopped server, not for a slow path. Each moment
// counts once: a stall's part is taken from the end of the one before, as
// waitedIn takes it. c.mu must be held.
func (c *conn) stalledPart(from, to time.Duration) time.Duration {
	var d time.Duration
	for i, st := range c.stalls {
		until := st.Until
		if c.stallOpen && i == len(c.stalls)-1 {
			until = max(until, to)
		}
		since := st.Since
		if i > 0 {
			since = max(since, c.stalls[i-1].Until)
		}
		if hi, lo := min(to, until), max(from, since); hi > lo {
			d += hi - lo
		}
	}
	return d
}

// span is a blocked write call's time, from its start to its return.
type span struct{ from, to time.Duration }

// waitedIn is how much of the blocked writes that have already returned
// fell inside st, a stall about to be recorded: their time in it, which
// stalledPart could not count when they returned because the stall was
// not known yet. It counts from the end of the stall before (st's start,
// placed from the acks, may reach back into it), whose part each write
// counted already, to the writes' return: the stall lasts at least until
// now (the pass opens it, or the ack that ends it records it, after they
// returned). c.mu must be held.
func (c *conn) waitedIn(st Stall) time.Duration {
	from := st.Since
	if n := len(c.stalls); n > 0 {
		from = max(from, c.stalls[n-1].Until)
	}
	var d time.Duration
	for _, w := range c.waits[:min(c.nWaits, len(c.waits))] {
		if hi, lo := w.to, max(w.from, from); hi > lo {
			d += hi - lo
		}
	}
	return d
}

// Path implements flow.PathObserver: the relays the server's first ack
// echoed, and the address it sees this connection from.
func (c *conn) Path(via []string, seenFrom string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if via != nil {
		c.path, c.pathKnown = via, true
	}
	c.seenFrom = seenFrom
}

var _ flow.PathObserver = (*conn)(nil)

// StalledNow is how many open connections are in a stall now (as of the
// last pass): the live display's "stalled", as against a writer that
// waits on a path that keeps flowing.
func (o *Observer) StalledNow() int {
	n := 0
	conns := o.snapshotConns()
	defer releaseConns(conns)
	for _, c := range *conns {
		c.mu.Lock()
		if c.stallOpen && !c.closed {
			n++
		}
		c.mu.Unlock()
	}
	return n
}
