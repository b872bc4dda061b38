package hop

import (
	"container/list"
	"net"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-backpressure/go-backpressure/internal/ratelog"
)

// httpConns bounds the connections one HTTP server holds that are not
// WebSockets: those still sending their request headers, serving a
// request, or idle between keep-alive requests. --max-connections counts
// only WebSockets (from the upgrade on), so without this a peer could hold
// a file descriptor per slow-header or idle connection up to the process's
// limit, and /healthz with it.
//
// Beyond max, the new connection does not wait: the oldest connection
// that is idle or still sending headers is closed in its favour (counted
// bp_http_connections_closed_total{reason="idle"|"headers"}). So a flood
// of dribblers or idle keep-alives keeps pushing its own oldest out, and
// a health check, which sends its request at once and is then active, is
// never the one closed. Only when every connection is busy with a request
// is the new one closed (reason "full"). Connections leave the count when
// they close or are hijacked (a WebSocket: the guard counts it from then).
type httpConns struct {
	max    int
	closed *prometheus.CounterVec
	warn   *ratelog.Logger

	mu        sync.Mutex
	conns     map[net.Conn]*list.Element // every connection counted; nil element: active
	evictable list.List                  // of httpConn, oldest first: new (headers) or idle
}

// httpConn is a connection that may be closed for a newer one.
type httpConn struct {
	c     net.Conn
	state http.ConnState
}

// newHTTPConns returns the bound; max 0 bounds nothing.
func newHTTPConns(max int, closed *prometheus.CounterVec, warn *ratelog.Logger) *httpConns {
	return &httpConns{max: max, closed: closed, warn: warn, conns: map[net.Conn]*list.Element{}}
}

// ConnState is the http.Server hook.
func (h *httpConns) ConnState(c net.Conn, state http.ConnState) {
	if h.max <= 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e, known := h.conns[c]
	if e != nil {
		h.evictable.Remove(e)
	}
	switch state {
	case http.StateNew, http.StateIdle:
		if state == http.StateIdle && !known {
			return // closed for a newer one already
		}
		h.conns[c] = h.evictable.PushBack(httpConn{c: c, state: state})
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

// Len is how many connections are counted now.
func (h *httpConns) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}
