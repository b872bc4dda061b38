package flow

import "time"

// WindowHeldMin is how long a send window must stay shut for its closing
// to count as one that held the writes (DefaultStallThreshold): a window
// shut for an instant at the start, gRPC's first 64 KiB filled before the
// peer's first WINDOW_UPDATE, is not where the writes stopped, and a
// report that named it would date the stop milliseconds into the run.
const WindowHeldMin = DefaultStallThreshold

// windowClosing follows one send window's closings: the first, and the
// first that held (stayed shut WindowHeldMin). Its zero value is a window
// never shut. Its owner guards it.
type windowClosing struct {
	since time.Time // shut since; zero while open
	first time.Time // the first closing; zero: never shut
	held  time.Time // the first closing that held; zero: none (yet)
}

// note records whether the window is shut at now: a closing starts when
// it is first seen shut and ends when it is seen open again.
func (w *windowClosing) note(now time.Time, shut bool) {
	switch {
	case shut && w.since.IsZero():
		w.since = now
		if w.first.IsZero() {
			w.first = now
		}
	case !shut && !w.since.IsZero():
		w.hold(now)
		w.since = time.Time{}
	}
}

// hold marks the closing in progress as the one that held, if it is the
// first to have lasted WindowHeldMin by now.
func (w *windowClosing) hold(now time.Time) {
	if w.held.IsZero() && !w.since.IsZero() && now.Sub(w.since) >= WindowHeldMin {
		w.held = w.since
	}
}

// at returns the first closing and the first that held, a closing still
// in progress counted up to now; zero times for none.
func (w windowClosing) at(now time.Time) (first, held time.Time) {
	w.hold(now)
	return w.first, w.held
}
