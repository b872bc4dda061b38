package flow

import "sync"

// callbacks counts a session's timer callbacks (acks, the idle watch, the
// linger bound) into the run's WaitGroup while they run, so Run waits for
// them as it waits for its reader, without a goroutine per timer parked in
// between (each costs a stack of 4 to 8 KiB: with 19,000 slow connections
// open, the acker and the idle watch goroutines held 18 KiB per connection).
// Once stopped, a callback that fires does nothing.
type callbacks struct {
	mu      sync.Mutex
	stopped bool
	wg      *sync.WaitGroup
}

// enter reports whether a callback may run; if so it must call wg.Done
// when it returns. The WaitGroup's Add happens under mu, before stop, so
// never concurrently with the Wait that follows stop.
func (c *callbacks) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || c.wg == nil {
		return false
	}
	c.wg.Add(1)
	return true
}

// stop makes every later callback a no-op; Run calls it before wg.Wait.
func (c *callbacks) stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
}
