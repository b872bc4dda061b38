package flow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// When a timed run ends, the writer may be blocked in a write that the path
// will never take: a peer that stopped reading for good is the very case
// this lab is for. The session gives it the linger timeout from the end of
// the run's time, for the blocked write, the fin and the last acks together,
// and then gives up with ErrDrainTimeout instead of waiting forever.
//
//	start ---- Duration ----> end of writing ---- LingerTimeout ----> drain deadline
//	                          (a write still blocked: its socket's write deadline)

// drainDeadline is when a timed run must have drained: the end of its
// writing plus the linger timeout. The zero time for a run without a time
// bound (a count), which ends when its bytes are written.
func (s *Session) drainDeadline() time.Time {
	if s.plan.Write == nil || s.plan.Write.Duration <= 0 {
		return time.Time{}
	}
	return s.start.Add(s.plan.Write.Duration + s.plan.LingerTimeout)
}

// boundWritesAfter arranges that once wctx (the run's writing time) ends
// while the session goes on, every write on the connection, a blocked
// payload write included, fails at the drain deadline. The returned stop
// undoes it; it is a no-op for runs without a time bound.
func (s *Session) boundWritesAfter(ctx, wctx context.Context) (stop func()) {
	wd, ok := s.conn.(writeDeadliner)
	deadline := s.drainDeadline()
	if !ok || deadline.IsZero() {
		return func() {}
	}
	cancel := context.AfterFunc(wctx, func() {
		if ctx.Err() == nil {
			_ = wd.setWriteDeadline(deadline)
		}
	})
	return func() {
		if !cancel() && ctx.Err() == nil {
			_ = wd.setWriteDeadline(time.Time{}) // it ran: drained in time, lift it
		}
	}
}

// notDrained says what a write that failed at the drain deadline means: the
// path never took the bytes.
func (s *Session) notDrained(err error, written int64) error {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || s.drainDeadline().IsZero() || time.Now().Before(s.drainDeadline()) {
		return nil
	}
	acked := s.acks.Acked()
	return fmt.Errorf("%w: the path never drained: a write was still blocked %s after the run's time was up; %d bytes written, %d acknowledged, %d stuck on the way",
		ErrDrainTimeout, s.plan.LingerTimeout, written, acked, written-acked)
}
