package relay

import "sync"

// Budget is a memory cap shared by every buffer of a relay process: a
// reader reserves room before it reads, and waits (paused, counted) when
// the budget is used up, so many connections cannot add up past it.
type Budget struct {
	mu      sync.Mutex
	max     int64
	used    int64
	changed chan struct{} // closed on the next release; nil until someone waits
}

// NewBudget returns a budget of max bytes.
func NewBudget(max int64) *Budget { return &Budget{max: max} }

// Max is the budget's size.
func (b *Budget) Max() int64 { return b.max }

// Used is the bytes reserved now.
func (b *Budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// reserve takes n bytes, or returns a channel closed when bytes are given
// back. A nil budget grants everything.
func (b *Budget) reserve(n int64) (bool, <-chan struct{}) {
	if b == nil {
		return true, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n <= b.max {
		b.used += n
		return true, nil
	}
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return false, b.changed
}

// release gives n reserved bytes back and wakes the readers waiting.
func (b *Budget) release(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	b.mu.Unlock()
}
