package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// These tests run bp-server in-process (run), hit it with bad input on
// real loopback sockets, and check that each is refused clearly, counted
// by its reason, and that good clients are served exactly meanwhile; and
// that no descriptor outlives the server.

// syncBuffer collects the server's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// inProc is a bp-server running in this process.
type inProc struct {
	http, tcp string
	logs      *syncBuffer
	stop      func() // ends run and waits for it (bounded)
}

// startInProc runs bp-server with args after loopback listeners on free
// ports; the cleanup stops it.
func startInProc(t *testing.T, args ...string) *inProc {
	t.Helper()
	cfg, err := loadConfig(append([]string{"--http-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0", "--grpc-addr", "", "--log-format", "json", "--sample-interval", "0"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	p := &inProc{logs: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, cfg, slog.New(slog.NewJSONHandler(p.logs, nil)), func(h, tc string) {
			p.http, p.tcp = h, tc
			close(ready)
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("run ended before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("bp-server did not listen within 10s")
	}
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("run did not return within 10s of shutdown")
			}
		})
	}
	t.Cleanup(p.stop)
	return p
}

// metric reads one series from /metrics, e.g.
// metric(t, `bp_connection_errors_total{protocol="tcp",reason="hello"}`).
func (p *inProc) metric(t *testing.T, series string) float64 {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + p.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in /metrics", series)
	return 0
}

// waitMetric polls until the series has the value (bounded).
func (p *inProc) waitMetric(t *testing.T, series string, want float64) {
	t.Helper()
	var got float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = p.metric(t, series); got == want {
			return
		}
	}
	t.Errorf("%s = %v, want %v", series, got, want)
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// checkFDs fails the test unless the descriptor count comes back to base
// (bounded wait: closes finish asynchronously).
func checkFDs(t *testing.T, base int) {
	t.Helper()
	n := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n = openFDs(t); n <= base {
			return
		}
	}
	ents, _ := os.ReadDir("/proc/self/fd")
	var links []string
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		links = append(links, e.Name()+"->"+l)
	}
	t.Errorf("%d descriptors open after the server stopped, %d before: %v", n, base, links)
}

// fdBaseline warms the network poller up (its descriptors stay) and
// returns the descriptor count.
func fdBaseline(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return openFDs(t)
}

// goodTCPRun is a bp client's up run of total bytes; it returns what the
// client wrote and had acknowledged.
func goodRun(t *testing.T, dial func(context.Context, flow.Hello) (flow.Conn, error), total int64) (flow.Snapshot, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := dial(ctx, flow.Hello{RunID: "good", Direction: flow.Up, PayloadSize: 64 << 10, TotalBytes: total})
	if err != nil {
		return flow.Snapshot{}, err
	}
	return flow.NewSession(c, flow.Plan{
		Write:     &flow.WritePlan{Payload: bytes.Repeat([]byte{'g'}, 64<<10), TotalBytes: total},
		Initiator: true,
	}, nil).Run(ctx)
}

// rawTCP sends b on a new connection to addr, then half-closes when
// closeWrite, and returns the connection.
func rawTCP(t *testing.T, addr string, b []byte, closeWrite bool) *net.TCPConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if len(b) > 0 {
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if closeWrite {
		nc.(*net.TCPConn).CloseWrite()
	}
	return nc.(*net.TCPConn)
}

// waitClosed reads nc until the server closes it (bounded).
func waitClosed(t *testing.T, nc net.Conn, within time.Duration) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("server did not close the connection within %s", within)
	}
}

// dialWS opens a gorilla WebSocket to the server's /ws.
func dialWS(t *testing.T, addr string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial("ws://"+addr+"/ws", header)
	if err == nil {
		t.Cleanup(func() { ws.Close() })
	}
	return ws, resp, err
}

// closeCode reads ws until it ends and returns the server's close code and
// reason (bounded).
func closeCode(t *testing.T, ws *websocket.Conn) (int, string) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := 0; i < 10000; i++ {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue // acks
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Text
		}
		t.Fatalf("connection ended without a close frame: %v", err)
	}
	t.Fatal("no close frame after 10000 messages")
	return 0, ""
}

const helloJSON = `{"type":"hello","version":1,"direction":"up"}`

// TestBadInputKeepsServing: bad TCP and WebSocket peers hit the server
// while good clients run; every bad one is closed with a clear reason
// (close code on WebSocket), counted by reason, and the good runs complete
// with every byte acknowledged; no descriptor is left after shutdown.
func TestBadInputKeepsServing(t *testing.T) {
	base := fdBaseline(t)
	// Runs last: after the clients' and the server's cleanups.
	t.Cleanup(func() { checkFDs(t, base) })
	srv := startInProc(t, "--hello-timeout", "300ms", "--idle-timeout", "1s", "--ws-max-message", "64KiB")

	const total = 8 << 20
	type result struct {
		name string
		snap flow.Snapshot
		err  error
	}
	good := make(chan result, 2)
	go func() {
		snap, err := goodRun(t, func(ctx context.Context, h flow.Hello) (flow.Conn, error) {
			return flow.DialTCP(ctx, srv.tcp, h, flow.SocketOptions{})
		}, total)
		good <- result{"tcp", snap, err}
	}()
	go func() {
		snap, err := goodRun(t, func(ctx context.Context, h flow.Hello) (flow.Conn, error) {
			return flow.DialWebSocket(ctx, "ws://"+srv.http+"/ws", h, flow.SocketOptions{}, nil)
		}, total)
		good <- result{"websocket", snap, err}
	}()

	// TCP: each rejected hello is closed by the server.
	for _, tc := range []struct {
		name string
		send string
	}{
		{"too long", "BP/1 " + strings.Repeat("x", 2000)},                     // no newline within 1024 bytes
		{"malformed", "BP/1 {not json\n"},                                     // JSON error
		{"unknown version", "BP/1 {\"type\":\"hello\",\"version\":2}\n"},      // version 2 refused
		{"cut off", "BP/1 {\"type\":\"hello\""},                               // closed before the newline
		{"late", "BP/1 {\"type\":\"hello\",\"version\":1"},                    // no newline within the hello timeout
		{"wrong type", "BP/1 {\"type\":\"ack\",\"version\":1,\"bytes\":3}\n"}, // not a hello
	} {
		nc := rawTCP(t, srv.tcp, []byte(tc.send), tc.name == "cut off")
		waitClosed(t, nc, 5*time.Second)
	}
	// A half-closed connection: hello, one 1000-byte frame, then CloseWrite
	// mid-run (no fin): the server ends it as peer_closed.
	frame := make([]byte, 5+1000)
	frame[0] = 'D'
	binary.BigEndian.PutUint32(frame[1:], 1000)
	half := rawTCP(t, srv.tcp, append([]byte("BP/1 "+helloJSON+"\n"), frame...), true)
	waitClosed(t, half, 5*time.Second)
	// A hello-less half-close is the normal end of a raw stream: clean.
	rawTCP(t, srv.tcp, bytes.Repeat([]byte{'r'}, 500), true)
	// Silent: hello-less after 300 ms, then idle after 1 s.
	silent := rawTCP(t, srv.tcp, nil, false)
	waitClosed(t, silent, 10*time.Second)

	// WebSocket: bad hello JSON -> 1008.
	ws, _, err := dialWS(t, srv.http, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.WriteMessage(websocket.TextMessage, []byte("{"))
	if code, reason := closeCode(t, ws); code != websocket.ClosePolicyViolation || !strings.Contains(reason, "hello") {
		t.Errorf("bad hello: close %d %q, want 1008 naming the hello", code, reason)
	}
	// A message over --ws-max-message -> 1009.
	ws, _, err = dialWS(t, srv.http, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.WriteMessage(websocket.TextMessage, []byte(helloJSON))
	ws.WriteMessage(websocket.BinaryMessage, make([]byte, 100<<10))
	if code, _ := closeCode(t, ws); code != websocket.CloseMessageTooBig {
		t.Errorf("oversized message: close %d, want 1009", code)
	}
	// Non-JSON text after the hello -> 1003.
	ws, _, err = dialWS(t, srv.http, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.WriteMessage(websocket.TextMessage, []byte(helloJSON))
	ws.WriteMessage(websocket.TextMessage, []byte("hello there"))
	if code, reason := closeCode(t, ws); code != websocket.CloseUnsupportedData || !strings.Contains(reason, "control message") {
		t.Errorf("text after hello: close %d %q, want 1003 naming the control message", code, reason)
	}
	// Garbage frames after the hello -> 1002 (gorilla's protocol error).
	ws, _, err = dialWS(t, srv.http, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.WriteMessage(websocket.TextMessage, []byte(helloJSON))
	ws.NetConn().Write([]byte{0xff, 0xff, 0xff, 0xff, 0, 1, 2, 3})
	if code, _ := closeCode(t, ws); code != websocket.CloseProtocolError {
		t.Errorf("garbage frame: close %d, want 1002", code)
	}
	// An origin that is not allowed -> 403 before the upgrade.
	_, resp, err := dialWS(t, srv.http, http.Header{"Origin": {"http://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign origin: err %v, response %v, want HTTP 403", err, resp)
	}
	// The page's own origin (same host) is allowed.
	if _, _, err := dialWS(t, srv.http, http.Header{"Origin": {"http://" + srv.http}}); err != nil {
		t.Errorf("same origin refused: %v", err)
	}

	for range 2 {
		r := <-good
		if r.err != nil || r.snap.Written != total || r.snap.Acked != total {
			t.Errorf("good %s run: err %v, written %d, acked %d; want nil, %d, %d", r.name, r.err, r.snap.Written, r.snap.Acked, total, total)
		}
	}

	for series, want := range map[string]float64{
		`bp_connection_errors_total{protocol="tcp",reason="hello"}`:              6,
		`bp_connection_errors_total{protocol="tcp",reason="peer_closed"}`:        1,
		`bp_connection_errors_total{protocol="tcp",reason="idle"}`:               1,
		`bp_connection_errors_total{protocol="websocket",reason="hello"}`:        1,
		`bp_connection_errors_total{protocol="websocket",reason="too_large"}`:    1,
		`bp_connection_errors_total{protocol="websocket",reason="protocol"}`:     2,
		`bp_connections_rejected_total{protocol="websocket",reason="origin"}`:    1,
		`bp_connections_rejected_total{protocol="websocket",reason="limit"}`:     0,
		`bp_connection_errors_total{protocol="tcp",reason="other"}`:              0,
		`bp_connection_errors_total{protocol="websocket",reason="other"}`:        0,
		`bp_bytes_read_total{protocol="tcp"}`:                                    total + 1000 + 500,
		`bp_connections{protocol="tcp"}`:                                         0,
		`bp_connections_rejected_total{protocol="websocket",reason="handshake"}`: 0,
	} {
		srv.waitMetric(t, series, want)
	}
	logs := srv.logs.String()
	for _, want := range []string{`"msg":"tcp hello rejected"`, `"reason":"hello"`, `"msg":"websocket refused: origin not allowed"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s", want)
		}
	}
}

// TestConnectionLimit: with --max-connections 2, a third connection on each
// listener is refused at once (TCP closed, WebSocket 503) and counted; once
// a place is free, connections are served again.
func TestConnectionLimit(t *testing.T) {
	base := fdBaseline(t)
	// Runs last: after the clients' and the server's cleanups.
	t.Cleanup(func() { checkFDs(t, base) })
	srv := startInProc(t, "--max-connections", "2")
	// Two hello-less TCP streams hold both places.
	a := rawTCP(t, srv.tcp, []byte("x"), false)
	rawTCP(t, srv.tcp, []byte("y"), false)
	srv.waitMetric(t, `bp_connections{protocol="tcp"}`, 2)
	third := rawTCP(t, srv.tcp, nil, false)
	waitClosed(t, third, 2*time.Second)
	srv.waitMetric(t, `bp_connections_rejected_total{protocol="tcp",reason="limit"}`, 1)

	w1, _, err := dialWS(t, srv.http, nil)
	if err != nil {
		t.Fatal(err)
	}
	w1.WriteMessage(websocket.TextMessage, []byte(helloJSON))
	w2, _, err := dialWS(t, srv.http, nil)
	if err != nil {
		t.Fatal(err)
	}
	w2.WriteMessage(websocket.TextMessage, []byte(helloJSON))
	srv.waitMetric(t, `bp_connections{protocol="websocket"}`, 2)
	_, resp, err := dialWS(t, srv.http, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("third websocket: err %v, response %v, want HTTP 503", err, resp)
	}
	srv.waitMetric(t, `bp_connections_rejected_total{protocol="websocket",reason="limit"}`, 1)

	// A place frees up: the next connection is served.
	a.Close()
	srv.waitMetric(t, `bp_connections{protocol="tcp"}`, 1)
	rawTCP(t, srv.tcp, []byte("z"), false)
	srv.waitMetric(t, `bp_connections{protocol="tcp"}`, 2)
	srv.waitMetric(t, `bp_connections_rejected_total{protocol="tcp",reason="limit"}`, 1)
}

// TestHTTPLimits: unknown paths get a clean 404, huge headers 431, and a
// client that sends its headers too slowly is disconnected.
func TestHTTPLimits(t *testing.T) {
	base := fdBaseline(t)
	// Runs last: after the clients' and the server's cleanups.
	t.Cleanup(func() { checkFDs(t, base) })
	srv := startInProc(t, "--read-header-timeout", "300ms", "--max-header-bytes", "1KiB")
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + srv.http + "/no-such-path")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: HTTP %d, want 404", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "http://"+srv.http+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("b", 64<<10))
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("huge headers: HTTP %d, want 431", resp.StatusCode)
	}
	// Slow headers: half a request line, then nothing.
	nc := rawTCP(t, srv.http, []byte("GET /healthz HTTP/1.1\r\nHost: x\r\n"), false)
	began := time.Now()
	waitClosed(t, nc, 5*time.Second)
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("slow headers closed after %s, want about 300ms", d)
	}
}
