package sockstat

import (
	"sync"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// SampledConn is one socket registered with a Sampler: its Reader, its
// reused Sample, and what the previous sample said, for deltas and window
// transitions. Several streams of one multiplexed connection share one
// (holders), so that their socket is read and counted once. It is the
// handle Sampler.Conn gives; the observers Open returns (connHandle) let
// go of it, and the last of them takes its last sample.
type SampledConn struct {
	s       *Sampler
	info    flow.ConnInfo
	proto   int
	reader  *Reader
	index   int // position in s.conns, under s.mu; -1 once unregistered
	holders int // connections (streams) on this socket still open, under s.mu

	mu      sync.Mutex // guards the fields below
	done    bool
	sampled bool // sample is a real reading, taken at lastAt
	lastAt  time.Time
	tally   // the last sample, the kernel's counters at it, the zero-window clock
}

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

// widen adds a joining stream's directions to the socket's: a socket is
// sampled as a writer's if any of its streams writes, as a reader's if
// any reads.
func (c *SampledConn) widen(info flow.ConnInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.info.Writes = c.info.Writes || info.Writes
	c.info.Reads = c.info.Reads || info.Reads
}

// leave lets go of one holder. The last one unregisters the socket; when
// it is closing (the socket still open) it takes the last sample first,
// so that counters that grow until the end lose nothing.
func (c *SampledConn) leave(closing bool) {
	if !c.s.release(c) {
		return
	}
	now := time.Now()
	var g Gauges
	var d Counters
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return
	}
	if closing {
		c.sampleLocked(now, &g, &d)
	}
	c.done = true
	c.mu.Unlock()
	if closing {
		c.s.publishFinal(c.proto, g, d)
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
