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

	mu      sync.Mutex // guards the fields below
	done    bool
	sampled bool // sample is a real reading, taken at lastAt
	lastAt  time.Time
	tally   // the last sample, the kernel's counters at it, the zero-window clock
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
