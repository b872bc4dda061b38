package flow

import "time"

// WriteObserver reports payload writes to a connection's observer the same
// way wherever they are made (the session's writer, a relay's pipes): the
// write's start (WriteStartObserver), its bytes entering the in-pipe figure
// when the peer acknowledges, and Wrote with the time it blocked.
//
// It is a value with no allocation per write: call Begin just before the
// write call and End just after it.
type WriteObserver struct {
	obs    ConnObserver
	start  WriteStartObserver // nil: obs has no such ability
	stall  time.Duration
	inPipe bool
}

// NewWriteObserver reports to obs; a write blocked for stallThreshold or
// longer is a stall. inPipe says whether written bytes enter the in-pipe
// figure: only on connections whose peer sends acks (Conn.SpeaksControl).
func NewWriteObserver(obs ConnObserver, stallThreshold time.Duration, inPipe bool) WriteObserver {
	start, _ := obs.(WriteStartObserver)
	return WriteObserver{obs: obs, start: start, stall: stallThreshold, inPipe: inPipe}
}

// Begin is called as a payload write call begins; it returns the time to
// hand to End.
func (w *WriteObserver) Begin() time.Time {
	began := time.Now()
	if w.start != nil {
		w.start.WriteStarting(began)
	}
	return began
}

// End is called when the write call begun at began returned, with the
// payload bytes it accepted. It returns the time it read as the call's end,
// so the caller's idle clock needs no clock read of its own.
func (w *WriteObserver) End(began time.Time, n int) time.Time {
	now := time.Now()
	blocked := now.Sub(began)
	if n > 0 && w.inPipe {
		w.obs.InPipe(int64(n))
	}
	w.obs.Wrote(n, blocked, blocked >= w.stall)
	return now
}
