package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// vmRSSKiB is VmRSS of process pid, from /proc/PID/status.
func vmRSSKiB(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc/PID/status: %v", err)
	}
	m := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// publicBound reads the test profile's RSS bound from docs/SAFETY.md's
// "Public deployment" section, so the page and the test agree.
func publicBound(t *testing.T) int {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs/SAFETY.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`its\s+RSS\s+stays\s+under\s+(\d+)\s+MiB`).FindSubmatch(doc)
	if m == nil {
		t.Fatal(`docs/SAFETY.md states no "its RSS stays under N MiB" for the test profile`)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// holdConns opens n connections with open (each closed when the test
// ends) and returns how many opened.
func holdConns(t *testing.T, n int, open func() (io.Closer, error)) int {
	t.Helper()
	opened := 0
	for range n {
		c, err := open()
		if err != nil {
			continue
		}
		opened++
		t.Cleanup(func() { c.Close() })
	}
	return opened
}

// TestPublicProfile: bp-server with docs/SAFETY.md's public profile (its
// limits scaled down to 200 connections a listener, 100 HTTP ones) is
// pushed past every limit at once: 220 raw TCP peers sending 256 KiB
// each, 220 WebSockets
// that say hello and send nothing, 150 header dribblers and 150 idle
// keep-alives. It refuses what is over its limits, pushes the oldest
// HTTP connections out for new ones, keeps answering /healthz, holds no
// more file descriptors than its limits need, and its memory stays under
// the bound docs/SAFETY.md states.
func TestPublicProfile(t *testing.T) {
	t.Parallel()
	bound := publicBound(t)
	srv := startServer(t, "--max-connections", "200", "--max-http-connections", "100", "--hello-timeout", "30s",
		"--read-header-timeout", "30s", "--max-header-bytes", "16KiB", "--ws-max-message", "1MiB")
	// Raw TCP peers (no hello) that send 256 KiB each, so the server's
	// readers take their full-size buffers.
	chunk := make([]byte, 256<<10)
	tcp := holdConns(t, 220, func() (io.Closer, error) {
		c, err := net.DialTimeout("tcp", srv.TCPAddr, 2*time.Second)
		if err == nil {
			go func() { c.SetWriteDeadline(time.Now().Add(5 * time.Second)); c.Write(chunk) }()
		}
		return c, err
	})
	hello, _ := flow.EncodeHello(flow.Hello{RunID: "public"})
	ws := holdConns(t, 220, func() (io.Closer, error) {
		c, _, err := websocket.DefaultDialer.Dial(srv.WSURL(), nil)
		if err == nil {
			c.WriteMessage(websocket.TextMessage, hello)
		}
		return c, err
	})
	dribblers := holdConns(t, 150, func() (io.Closer, error) {
		c, err := net.DialTimeout("tcp", srv.HTTPAddr, 2*time.Second)
		if err == nil {
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		}
		return c, err
	})
	idle := holdConns(t, 150, func() (io.Closer, error) {
		c, err := net.DialTimeout("tcp", srv.HTTPAddr, 2*time.Second)
		if err != nil {
			return nil, err
		}
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			resp.Body.Close()
		}
		return c, nil
	})
	t.Logf("opened %d tcp, %d websocket, %d dribblers, %d idle keep-alives", tcp, ws, dribblers, idle)

	for i := range 5 {
		began := time.Now()
		if err := healthz(srv.HTTPAddr); err != nil {
			t.Fatalf("/healthz %d at the limits: %v", i, err)
		}
		if took := time.Since(began); took > 500*time.Millisecond {
			t.Errorf("/healthz took %s at the limits", took)
		}
	}
	m := scrape(t, srv.MetricsURL())
	for _, p := range []string{"tcp", "websocket"} {
		if n := m.Value(t, "bp_connections_rejected_total", "protocol", p, "reason", "limit"); n < 1 {
			t.Errorf("%s: %v refused for the limit, want some of the 220", p, n)
		}
		if n := m.Value(t, "bp_connections", "protocol", p); n > 200 {
			t.Errorf("%s: %v connections open, over --max-connections 200", p, n)
		}
	}
	if n := m.Sum("bp_http_connections_closed_total"); n < 100 {
		t.Errorf("%v HTTP connections pushed out, want at least 100 of the 300 past the limit", n)
	}
	fds, need := fdCount(t, srv.Pid()), 2*200+100+64
	rss := vmRSSKiB(t, srv.Pid())
	if raceEnabled {
		bound *= 4 // the race detector's shadow memory
	}
	t.Logf("at the limits: %d fds (bound %d), VmRSS %.1f MiB (bound %d MiB)", fds, need, float64(rss)/1024, bound)
	if fds > need {
		t.Errorf("%d fds open, more than the limits need (%d)", fds, need)
	}
	if rss > bound<<10 {
		t.Errorf("VmRSS %.1f MiB, over the documented %d MiB", float64(rss)/1024, bound)
	}
	if srv.Exited() {
		t.Fatalf("bp-server exited: %s", srv.Stderr())
	}
}
