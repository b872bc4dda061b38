package hop

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-backpressure/go-backpressure/internal/ratelog"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// httpConns bounds the connections one HTTP server holds that are not
// WebSockets: those still sending their request headers, serving a
// request, or idle between keep-alive requests. --max-connections counts
// only WebSockets (from the upgrade on), so without this a peer could hold
// a file descriptor per slow-header or idle connection up to the process's
// limit, and /healthz with it.
//
// At max, the listener (Listener) does not accept until a connection can
// be closed for the new one: the oldest idle one at once, the oldest one
// still sending headers once it has been waiting headerGrace and the
// server has read all it sent (a request unread in its socket is the
// server's lag, not the peer's: SIOCINQ). Closed, it
// is counted (bp_http_connections_closed_total{reason="idle"|"headers"}).
// So a flood of dribblers or idle keep-alives keeps pushing its own oldest
// out, and a health check, which sends its request at once and is then
// active, is never the one closed. Meanwhile new connections wait in the
// kernel's accept queue (bp_http_accept_paused_seconds_total), which is
// the backpressure a burst of honest clients needs: 5,000 WebSocket
// handshakes at once (bp-client --connections 5000) used to have 1,521 of
// theirs closed as "headers" before the server's two cores had read them,
// their requests already in the socket. Only when every connection is
// busy with a request and one is accepted anyway (a connection went
// active between the check and the hook) is the new one closed (reason
// "full"). Connections leave the count when they close or are hijacked (a
// WebSocket: the guard counts it from then).
type httpConns struct {
	max    int
	closed *prometheus.CounterVec
	paused prometheus.Counter
	warn   *ratelog.Logger

	mu        sync.Mutex
	conns     map[net.Conn]*list.Element // every connection counted; nil element: active
	evictable list.List                  // of httpConn, oldest first: new (headers) or idle
	changed   chan struct{}              // a token after any change, for Listener's wait
}

// headerGrace is how long a connection may wait for the server to read
// its request headers before a new connection over the limit may close
// it. A client that sends its request at once waits that long only when
// the server is that far behind; a dribbler is cut after it, so a flood
// of them lets the listener accept max a second.
const headerGrace = time.Second

// behindRecheck is how often a listener that waits because the server has
// not read its oldest connection's request yet looks again, besides every
// change of a connection's state.
const behindRecheck = 50 * time.Millisecond

// httpConn is a connection that may be closed for a newer one.
type httpConn struct {
	c     net.Conn
	state http.ConnState
	since time.Time // when it became new or idle
}

// newHTTPConns returns the bound; max 0 bounds nothing.
func newHTTPConns(max int, l *metrics.Listener, warn *ratelog.Logger) *httpConns {
	return &httpConns{max: max, closed: l.HTTPClosed, paused: l.HTTPPaused, warn: warn,
		conns: map[net.Conn]*list.Element{}, changed: make(chan struct{}, 1)}
}

// ConnState is the http.Server hook.
func (h *httpConns) ConnState(c net.Conn, state http.ConnState) {
	if h.max <= 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.signal()
	e, known := h.conns[c]
	if e != nil {
		h.evictable.Remove(e)
	}
	switch state {
	case http.StateNew, http.StateIdle:
		if state == http.StateIdle && !known {
			return // closed for a newer one already
		}
		h.conns[c] = h.evictable.PushBack(httpConn{c: c, state: state, since: time.Now()})
		if state == http.StateNew && len(h.conns) > h.max {
			h.evictOldest(c)
		}
	case http.StateActive:
		if known {
			h.conns[c] = nil
		}
	case http.StateHijacked, http.StateClosed:
		delete(h.conns, c)
	}
}

// evictOldest closes the oldest idle or header-sending connection, which
// is newest itself when every other one is active. Called with mu held.
func (h *httpConns) evictOldest(newest net.Conn) {
	front := h.evictable.Front()
	old := front.Value.(httpConn)
	reason := "idle"
	switch {
	case old.c == newest:
		reason = "full"
	case old.state == http.StateNew:
		reason = "headers"
	}
	h.evictable.Remove(front)
	delete(h.conns, old.c)
	old.c.Close()
	h.closed.WithLabelValues(reason).Inc()
	h.warn.Warn("http_"+reason, "http connection closed: over --max-http-connections",
		"peer", old.c.RemoteAddr().String(), "max_http_connections", h.max)
}

// signal leaves a token for a waiting Listener (one is enough).
func (h *httpConns) signal() {
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// room says whether a new connection may be accepted now, and if not, how
// long until the oldest header-sending one may be closed for it (0: until
// a connection changes state).
func (h *httpConns) room(now time.Time) (ok bool, wait time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.conns) < h.max {
		return true, 0
	}
	front := h.evictable.Front()
	if front == nil {
		return false, 0 // every one busy with a request
	}
	old := front.Value.(httpConn)
	if old.state == http.StateIdle {
		return true, 0
	}
	if n, err := sockstat.Unread(old.c); err == nil && n > 0 {
		// Its request waits in the socket for the server to read it: the
		// server is behind, and every younger one waits longer still.
		return false, behindRecheck
	}
	if age := now.Sub(old.since); age < headerGrace {
		return false, headerGrace - age
	}
	return true, 0
}

// Listener wraps the server's listener so that, at max, Accept waits
// until room says a connection can be held (see httpConns).
func (h *httpConns) Listener(ln net.Listener) net.Listener {
	if h.max <= 0 {
		return ln
	}
	return &pacedListener{Listener: ln, h: h, closed: make(chan struct{})}
}

// pacedListener is Listener's: it holds off accept() while the bound is
// reached and nothing may be closed yet.
type pacedListener struct {
	net.Listener
	h      *httpConns
	closed chan struct{}
	once   sync.Once
}

// Accept waits for room, then for the next connection.
func (l *pacedListener) Accept() (net.Conn, error) {
	var began time.Time
	for {
		ok, wait := l.h.room(time.Now())
		if ok {
			break
		}
		if began.IsZero() {
			began = time.Now()
			l.h.warn.Warn("http_paused", "http listener not accepting: at --max-http-connections, new connections wait in the accept queue",
				"addr", l.Addr().String(), "max_http_connections", l.h.max)
		}
		if wait <= 0 {
			wait = headerGrace // a state change signals sooner
		}
		t := time.NewTimer(wait)
		select {
		case <-l.h.changed:
		case <-t.C:
		case <-l.closed:
			t.Stop()
			return nil, net.ErrClosed
		}
		t.Stop()
	}
	if !began.IsZero() {
		l.h.paused.Add(time.Since(began).Seconds())
	}
	return l.Listener.Accept()
}

// Close stops a waiting Accept too.
func (l *pacedListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// Len is how many connections are counted now.
func (h *httpConns) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}
