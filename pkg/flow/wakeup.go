package flow

import "sync"

// wakeup wakes every goroutine waiting on it, not just one. A stream may
// have two readers at once (the session's reader, and Close draining what
// the server still sends before the response ends), and a one-slot wake-up
// channel gave its single token to one of them: the other slept on with
// the stream ended until the whole connection closed, which bp-client's
// connection does only after all its streams' runs, so the run never
// ended (seen in CI, about one run in hundreds under -race).
//
// A waiter takes the channel with wait while it holds the lock that
// guards what it waits for, checks that, releases the lock and receives;
// whoever changes it does so under that lock and broadcasts after, which
// closes the channel every waiter since the change holds.
type wakeup struct {
	mu sync.Mutex
	ch chan struct{} // closed by the next broadcast; nil while none waits
}

// wait is the channel the next broadcast closes.
func (w *wakeup) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

// broadcast wakes every waiter. With none waiting it costs a lock and
// allocates nothing.
func (w *wakeup) broadcast() {
	w.mu.Lock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
	w.mu.Unlock()
}
