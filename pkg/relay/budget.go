package relay

import (
	"context"
	"sync"
)

// Budget is a memory cap shared by every buffer of a relay process: the
// payload bytes the relay holds, read from one side and not yet accepted by
// the other, summed over all connections.
//
// Only bytes actually held count. A reader takes room for what a read
// returned, after the read, and gives it back once the bytes are written;
// so a connection whose peers send nothing holds none of the budget, however
// many of them are open (reserving room before each read would let about
// max/128 KiB idle connections use it all up and stop every other
// connection for good). When the budget is full, a reader waits for room
// before it reads again, which passes backpressure on; waiters are served
// first come, first served, each woken as soon as room for it is given
// back, so none waits while room for it exists.
type Budget struct {
	mu      sync.Mutex
	max     int64
	used    int64
	waiters []*budgetWaiter // in arrival order
}

// budgetWaiter is one reader waiting for n bytes; ready is closed once they
// were granted.
type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

// NewBudget returns a budget of max bytes.
func NewBudget(max int64) *Budget { return &Budget{max: max} }

// Max is the budget's size.
func (b *Budget) Max() int64 { return b.max }

// Used is the bytes held now.
func (b *Budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Waiting is the readers waiting for room now.
func (b *Budget) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiters)
}

// tryAcquire takes n bytes when they fit and no reader waits ahead: one
// lock, the path of every read while the budget has room. A nil budget
// grants everything.
func (b *Budget) tryAcquire(n int64) bool {
	if b == nil || n == 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) == 0 && b.used+n <= b.max {
		b.used += n
		return true
	}
	return false
}

// acquire takes n bytes (at most Max: New clamps a read to it), waiting in
// turn until they fit or ctx ends; it returns ctx's error then, holding
// nothing. Call tryAcquire first: acquire always queues.
func (b *Budget) acquire(ctx context.Context, n int64) error {
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.mu.Lock()
	b.waiters = append(b.waiters, w)
	b.grantLocked() // room may have been given back since tryAcquire
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: give it back
		b.used -= n
	default:
		for i, o := range b.waiters {
			if o == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
	}
	b.grantLocked() // the next in line may fit now
	return ctx.Err()
}

// release gives n held bytes back and grants waiters in order while they
// fit.
func (b *Budget) release(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.grantLocked()
	b.mu.Unlock()
}

// grantLocked hands room to the waiters at the head of the line while the
// head's request fits; b.mu is held.
func (b *Budget) grantLocked() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.max {
		w := b.waiters[0]
		b.waiters[0] = nil
		b.waiters = b.waiters[1:]
		b.used += w.n
		close(w.ready)
	}
	if len(b.waiters) == 0 {
		b.waiters = nil
	}
}
