package flow

import (
	"sync"
	"sync/atomic"
	"time"
)

// streamLayer names the layer a waiting write is held by.
type streamLayer int

const (
	layerStream streamLayer = iota
	layerConn
	layerTCP
	layerCount
)

// sendSampleEvery is how often a connection's sampler looks at its
// streams' waiting writes, and so the grain of the split of their waits:
// a wait is counted to the layer that held it at each sample.
const sendSampleEvery = 5 * time.Millisecond

// sendSampler splits the time the streams of one connection wait in Send
// by the layer that held them (tapConn.layer), sampling while any of
// them waits and parked otherwise, so an idle connection costs no wake-ups.
type sendSampler struct {
	conn *tapConn

	mu      sync.Mutex
	clocks  map[*sendClock]struct{}
	waiting atomic.Int32 // Sends in progress on the connection
	running bool         // the sampling goroutine runs
	done    chan struct{}
	once    sync.Once
}

func newSendSampler(c *tapConn) *sendSampler {
	return &sendSampler{conn: c, clocks: make(map[*sendClock]struct{}), done: make(chan struct{})}
}

// sendClock is one stream's split of its Sends' waits.
type sendClock struct {
	id      func() uint32 // the stream's id on the connection (0: not known yet)
	mu      sync.Mutex
	started time.Time // the Send in progress began; zero: none
	counted time.Time // the wait is counted up to here
	blocked [layerCount]time.Duration
}

func (s *sendSampler) add(c *sendClock) {
	s.mu.Lock()
	s.clocks[c] = struct{}{}
	s.mu.Unlock()
}

func (s *sendSampler) remove(c *sendClock) {
	s.mu.Lock()
	delete(s.clocks, c)
	s.mu.Unlock()
}

// begin marks a Send of c starting, and wakes the sampler.
func (s *sendSampler) begin(c *sendClock) {
	now := time.Now()
	c.mu.Lock()
	c.started, c.counted = now, now
	c.mu.Unlock()
	if s.waiting.Add(1) == 1 {
		s.mu.Lock()
		if !s.running {
			s.running = true
			go s.run()
		}
		s.mu.Unlock()
	}
}

// end marks c's Send done: the rest of its wait goes to the layer that
// holds it now.
func (s *sendSampler) end(c *sendClock) {
	s.count(c, time.Now(), true)
	s.waiting.Add(-1)
}

// count adds c's wait since it was last counted to the layer that holds
// it at now.
func (s *sendSampler) count(c *sendClock, now time.Time, ended bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started.IsZero() {
		return
	}
	if d := now.Sub(c.counted); d > 0 {
		c.blocked[s.conn.layer(c.id())] += d
		c.counted = now
	}
	if ended {
		c.started = time.Time{}
	}
}

// run samples every sendSampleEvery while a Send waits; it stops after
// 20 samples with none (begin starts it again).
func (s *sendSampler) run() {
	t := time.NewTicker(sendSampleEvery)
	defer t.Stop()
	idle := 0
	for {
		select {
		case <-s.done:
			s.mu.Lock()
			s.running = false
			s.mu.Unlock()
			return
		case <-t.C:
			if s.waiting.Load() > 0 {
				idle = 0
				s.sample(time.Now())
				continue
			}
			if idle++; idle < 20 {
				continue
			}
			s.mu.Lock()
			if s.waiting.Load() == 0 {
				s.running = false
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
		}
	}
}

func (s *sendSampler) sample(now time.Time) {
	s.mu.Lock()
	clocks := make([]*sendClock, 0, len(s.clocks))
	for c := range s.clocks {
		clocks = append(clocks, c)
	}
	s.mu.Unlock()
	for _, c := range clocks {
		s.count(c, now, false)
	}
}

// stop ends the sampling for good (the connection closed).
func (s *sendSampler) stop() { s.once.Do(func() { close(s.done) }) }

// totals returns c's waits so far, by layer, the Send in progress
// included up to now.
func (s *sendSampler) totals(c *sendClock) [layerCount]time.Duration {
	s.count(c, time.Now(), false)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blocked
}
