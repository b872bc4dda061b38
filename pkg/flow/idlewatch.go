package flow

import (
	"fmt"
	"time"
)

// The idle watch is a timer, not a goroutine: it fires once per idle
// timeout after the last activity (a connection that moves bytes keeps
// pushing it back by rescheduling when it fires), so a slow connection
// costs one timer firing every IdleTimeout instead of a goroutine waking
// four times per IdleTimeout.

// startIdleWatch arms the idle watch when the plan has an idle timeout.
func (s *Session) startIdleWatch() {
	if s.plan.IdleTimeout <= 0 {
		return
	}
	s.idleTimer = time.AfterFunc(s.plan.IdleTimeout, s.idleCheck)
}

// idleCheck ends the run with ErrIdle once nothing moved for the idle
// timeout while nothing was paused, pacing or blocked on purpose, and else
// fires again when the timeout would be up.
func (s *Session) idleCheck() {
	if !s.timers.enter() {
		return
	}
	defer s.timers.wg.Done()
	if s.ctx.Err() != nil || s.finished.Load() {
		return
	}
	if s.writing.Load() || s.pacing.Load() || s.paused.Load() {
		s.touch() // on purpose, not idle: the clock starts again after it
		s.idleTimer.Reset(s.plan.IdleTimeout)
		return
	}
	s.noteArrival()
	idle := time.Since(s.start) - time.Duration(s.lastActive.Load())
	if idle >= s.plan.IdleTimeout {
		s.fail(fmt.Errorf("%w: no byte moved either way for %s", ErrIdle, idle.Round(time.Millisecond)))
		return
	}
	s.idleTimer.Reset(s.plan.IdleTimeout - idle)
}

// arrivalClock is a Conn that sees bytes arrive before its reads return
// them: a gRPC server's stream, whose messages grpc-go hands over whole.
type arrivalClock interface {
	lastArrival() time.Time
}

// noteArrival moves the last activity up to the conn's last arrival, if
// later: bytes of a message still coming in moved.
func (s *Session) noteArrival() {
	a, ok := s.conn.(arrivalClock)
	if !ok {
		return
	}
	t := a.lastArrival()
	if t.IsZero() {
		return
	}
	at := int64(t.Sub(s.start))
	for {
		cur := s.lastActive.Load()
		if at <= cur || s.lastActive.CompareAndSwap(cur, at) {
			return
		}
	}
}
