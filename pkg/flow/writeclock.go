package flow

import (
	"math"
	"sync/atomic"
	"time"
)

// writeClockEpoch is the monotonic origin of every WriteClock: a clock
// stores the start of a write as an offset from it, so one atomic integer
// holds a time without losing the monotonic reading.
var writeClockEpoch = time.Now()

// WriteClock tracks one connection's payload write call in progress, if
// any, from the WriteStartObserver and Wrote events: Start as a write
// begins, Stop as it returns. Observers read it at any time to see a write
// that is blocked right now, which Wrote only reports once it returns.
//
// It lives in pkg/flow because it is the state that event pair implies:
// the metrics, the report and the verdict all keep one per connection.
// Start and Stop come from the connection's writer, one goroutine; any
// goroutine may read. Every method is one or two atomic operations and
// allocates nothing. The zero value is a clock that has seen no write.
type WriteClock struct {
	// state is 0 before the first Start, clockIdle when no write is in
	// progress after one, and otherwise the start's offset from
	// writeClockEpoch (an offset that would read as 0 or clockIdle is
	// moved by a nanosecond).
	state atomic.Int64
}

const clockIdle = math.MinInt64

// Start records a write call beginning at began.
func (c *WriteClock) Start(began time.Time) {
	offset := int64(began.Sub(writeClockEpoch))
	if offset == 0 || offset == clockIdle {
		offset++
	}
	c.state.Store(offset)
}

// Stop records that the write call in progress returned (or was cut off).
func (c *WriteClock) Stop() {
	if c.state.Load() != 0 {
		c.state.Store(clockIdle)
	}
}

// Began returns when the write call in progress began; ok is false when
// none is in progress.
func (c *WriteClock) Began() (began time.Time, ok bool) {
	s := c.state.Load()
	if s == 0 || s == clockIdle {
		return time.Time{}, false
	}
	return writeClockEpoch.Add(time.Duration(s)), true
}

// Elapsed returns how long the write call in progress has run at now; ok
// is false when none is in progress.
func (c *WriteClock) Elapsed(now time.Time) (d time.Duration, ok bool) {
	began, ok := c.Began()
	if !ok {
		return 0, false
	}
	return max(now.Sub(began), 0), true
}

// StartsSeen reports whether the writer has reported a write start at
// all: only then does "no write in progress" mean the writer is not
// blocked, rather than that it does not report starts.
func (c *WriteClock) StartsSeen() bool { return c.state.Load() != 0 }
