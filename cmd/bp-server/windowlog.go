package main

import (
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// windowLogInterval is the least time between two "receive window closed"
// lines of one connection. A reader at the edge of keeping up can close and
// reopen its window many times a second; the log says so with counts instead
// of a line each time.
const windowLogInterval = 5 * time.Second

// windowLogs logs, per connection, when the window this server advertises
// closes (its reader fell behind and told the writer to stop) and reopens.
// Events come from the socket sampler's goroutine; connections register
// their logger for the life of their session.
type windowLogs struct {
	mu    sync.Mutex
	conns map[net.Conn]*windowLog
}

// windowLog is one connection's window log state.
type windowLog struct {
	log           *slog.Logger
	lastLogged    time.Time // last "closed" line
	closedAt      time.Time // when the window last closed, zero while open
	loggedClose   bool      // the current close was logged, so its reopen is too
	closes        int       // every close, for the connection's last line
	suppressed    int       // closes not logged since the last logged one
	suppressedFor time.Duration
}

// add starts logging window events of the connection whose socket is nc,
// and reports whether it did: the streams of an HTTP/2 connection share
// one socket, logged by the first of them to run (the caller removes it
// only then).
func (w *windowLogs) add(nc net.Conn, log *slog.Logger) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conns == nil {
		w.conns = map[net.Conn]*windowLog{}
	}
	if _, ok := w.conns[nc]; ok {
		return false
	}
	w.conns[nc] = &windowLog{log: log}
	return true
}

// remove stops logging for nc and returns how many times its window closed.
func (w *windowLogs) remove(nc net.Conn) (closes int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if l, ok := w.conns[nc]; ok {
		closes = l.closes
		delete(w.conns, nc)
	}
	return closes
}

// event handles one sampler event (sockstat.SamplerOptions.OnWindow).
func (w *windowLogs) event(ev sockstat.WindowEvent) {
	if ev.Window != sockstat.OwnWindow {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	l, ok := w.conns[ev.Conn]
	if !ok {
		return
	}
	if ev.Closed {
		l.closes++
		l.closedAt = ev.At
		if !l.lastLogged.IsZero() && ev.At.Sub(l.lastLogged) < windowLogInterval {
			l.suppressed++
			l.loggedClose = false
			return
		}
		attrs := []any{}
		if l.suppressed > 0 {
			attrs = append(attrs, "suppressed_closes", l.suppressed,
				"suppressed_closed_for", l.suppressedFor.Round(time.Millisecond).String())
		}
		l.log.Info("receive window closed", attrs...)
		l.lastLogged, l.loggedClose, l.suppressed, l.suppressedFor = ev.At, true, 0, 0
		return
	}
	if l.closedAt.IsZero() {
		return
	}
	closedFor := ev.At.Sub(l.closedAt)
	l.closedAt = time.Time{}
	if !l.loggedClose {
		l.suppressedFor += closedFor
		return
	}
	l.loggedClose = false
	l.log.Info("receive window reopened", "closed_for", closedFor.Round(time.Millisecond).String())
}
