package admission

import "sync/atomic"

// ConnLimit bounds the connections one listener serves at once. The zero
// value and a limit of 0 admit everyone (and still count).
type ConnLimit struct {
	max  int64
	open atomic.Int64
}

// NewConnLimit returns a limit of max connections at once (0: none).
func NewConnLimit(max int) *ConnLimit { return &ConnLimit{max: int64(max)} }

// Acquire takes a place, or reports false when the listener is full: the
// caller then refuses the connection at once.
func (l *ConnLimit) Acquire() bool {
	n := l.open.Add(1)
	if l.max > 0 && n > l.max {
		l.open.Add(-1)
		return false
	}
	return true
}

// Release gives a place back.
func (l *ConnLimit) Release() { l.open.Add(-1) }

// Open is the number of places taken now.
func (l *ConnLimit) Open() int { return int(l.open.Load()) }

// Max is the limit (0: none).
func (l *ConnLimit) Max() int { return int(l.max) }
