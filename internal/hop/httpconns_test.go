package hop

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/go-backpressure/go-backpressure/internal/ratelog"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
)

// TestHTTPConns: at --max-http-connections, a new connection pushes out
// the oldest idle keep-alive at once, or the oldest header dribbler once it
// has waited headerGrace (the new one waits in the accept queue until
// then, counted), never one busy with a request, and a health check still
// gets its answer.
func TestHTTPConns(t *testing.T) {
	m := metrics.NewListener(prometheus.NewRegistry())
	hc := newHTTPConns(3, m, ratelog.New(slog.New(slog.DiscardHandler)))
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/slow", func(http.ResponseWriter, *http.Request) { <-release })
	srv := &http.Server{Handler: mux, ConnState: hc.ConnState}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(hc.Listener(ln))
	defer srv.Close()
	defer close(release)
	addr := ln.Addr().String()
	dial := func(req string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, req)
		return c
	}
	waitLen := func(want int) {
		for deadline := time.Now().Add(5 * time.Second); hc.Len() != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections counted, want %d", hc.Len(), want)
			}
		}
	}
	closedSoon := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := io.ReadAll(c)
		return err == nil // EOF: closed by the server
	}

	busy := dial("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	idle := dial("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first health check: %v %v", resp, err)
	}
	// The client can read the response before the server's hook hears the
	// connection go idle; the dribbler must come after it in the oldest-
	// first order, so wait for the hook.
	waitIdle := func(want int) {
		for deadline := time.Now().Add(5 * time.Second); hc.idleCount() != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d idle connections counted, want %d", hc.idleCount(), want)
			}
		}
	}
	waitIdle(1)
	dribbler := dial("GET /healthz HTTP/1.1\r\n")
	dribbled := time.Now()
	waitLen(3)

	// A fourth: the idle keep-alive goes, then the dribbler.
	hc1 := dial("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if !closedSoon(idle) {
		t.Error("the idle keep-alive connection was not closed for a new one")
	}
	if resp, err := http.ReadResponse(bufio.NewReader(hc1), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("health check at the limit: %v %v", resp, err)
	}
	dial("GET /healthz HTTP/1.1\r\n")
	if !closedSoon(dribbler) {
		t.Error("the header dribbler was not closed for a new one")
	}
	if waited := time.Since(dribbled); waited < headerGrace {
		t.Errorf("the header dribbler was closed %s after it connected, before headerGrace %s", waited, headerGrace)
	}
	if got := testutil.ToFloat64(m.HTTPPaused); got < 0.5*headerGrace.Seconds() || got > 3*headerGrace.Seconds() {
		t.Errorf("bp_http_accept_paused_seconds_total = %v, want about the dribbler's wait for its grace (%s)", got, headerGrace)
	}
	busy.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := busy.Read(make([]byte, 1)); err == io.EOF {
		t.Error("a connection busy with a request was closed")
	}
	for _, reason := range []string{"idle", "headers"} {
		if got := testutil.ToFloat64(m.HTTPClosed.WithLabelValues(reason)); got != 1 {
			t.Errorf("closed %s: %v, want 1", reason, got)
		}
	}
}

// idleCount is how many idle keep-alive connections h holds for eviction.
func (h *httpConns) idleCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for e := h.evictable.Front(); e != nil; e = e.Next() {
		if e.Value.(httpConn).state == http.StateIdle {
			n++
		}
	}
	return n
}

// TestHTTPConnsUnreadRequest: at the limit, the oldest header-sending
// connection is not closed for a new one, however old, while its request
// sits unread in its socket (the server is behind, not the peer); once the
// server has read what it sent, it may be, after headerGrace.
func TestHTTPConnsUnreadRequest(t *testing.T) {
	m := metrics.NewListener(prometheus.NewRegistry())
	hc := newHTTPConns(1, m, ratelog.New(slog.New(slog.DiscardHandler)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hc.ConnState(c, http.StateNew)
	req := "GET /healthz HTTP/1.1\r\nHost: x\r\n"
	io.WriteString(peer, req)
	later := time.Now().Add(10 * headerGrace)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if ok, wait := hc.room(later); !ok && wait == behindRecheck {
			break // the request has arrived, unread
		}
		if time.Now().After(deadline) {
			t.Fatal("an old connection with its request unread was not waited for")
		}
	}
	if _, err := io.ReadFull(c, make([]byte, len(req))); err != nil {
		t.Fatal(err)
	}
	if ok, _ := hc.room(later); !ok {
		t.Error("a connection past headerGrace with nothing unread (a dribbler) may not be closed for a new one")
	}
	if ok, wait := hc.room(time.Now()); ok || wait <= 0 || wait > headerGrace {
		t.Errorf("a young dribbler: room %v, wait %s; want to wait up to headerGrace", ok, wait)
	}
}
