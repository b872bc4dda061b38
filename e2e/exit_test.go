package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClientUnreachable: a target nobody listens on ends the client at once
// with a non-zero status and a message that says so.
func TestClientUnreachable(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	for _, target := range []string{
		fmt.Sprintf("tcp://127.0.0.1:%d", port),
		fmt.Sprintf("ws://127.0.0.1:%d/ws", port),
	} {
		t.Run(strings.SplitN(target, ":", 2)[0], func(t *testing.T) {
			t.Parallel()
			began := time.Now()
			sum, code, stderr := runClient(t, "--target", target, "--count", "10", "--duration", "0")
			if code == 0 {
				t.Fatalf("exit status 0 against a closed port; stderr:\n%s", stderr)
			}
			if !strings.Contains(stderr, "cannot reach the target") {
				t.Errorf("stderr does not say %q:\n%s", "cannot reach the target", stderr)
			}
			if sum.Completed || sum.Error == "" {
				t.Errorf("report says completed %v, error %q; want a failed run", sum.Completed, sum.Error)
			}
			if d := time.Since(began); d > 10*time.Second {
				t.Errorf("took %s to give up on a refused connection", d)
			}
		})
	}
}

// TestClientSIGINT: an interrupted client prints its report and exits within
// a few seconds, even while its writes are blocked.
func TestClientSIGINT(t *testing.T) {
	t.Parallel()
	// The server stops reading at once, so the client is blocked in a write
	// when the signal arrives.
	srv := startServer(t, "--pause-after", "300ms", "--pause-for", "1m", "--rcvbuf", "64KiB")
	for _, proto := range protocols {
		t.Run(proto.label, func(t *testing.T) {
			t.Parallel()
			c := startClient(t, "--target", proto.target(srv), "--duration", "1m", "--sndbuf", "64KiB")
			// A blocked write is only counted when it returns, so wait for the
			// pause and for bytes in the pipe to stop moving.
			var last float64 = -1
			eventually(t, 10*time.Second, func() string {
				paused := scrape(t, srv.MetricsURL()).Value(t, "bp_reads_paused", "protocol", proto.label)
				inPipe := scrape(t, c.MetricsURL).Value(t, "bp_bytes_in_pipe", "protocol", proto.label)
				defer func() { last = inPipe }()
				if paused != 1 || inPipe <= 0 || inPipe != last {
					return fmt.Sprintf("server reads paused %.0f, client in pipe %.0f (before %.0f): not blocked yet", paused, inPipe, last)
				}
				return ""
			})
			time.Sleep(500 * time.Millisecond) // well past the stall threshold
			c.Signal(t, syscall.SIGINT)
			began := time.Now()
			code := c.Wait(t, 5*time.Second)
			t.Logf("exited %s after SIGINT with status %d", time.Since(began).Round(time.Millisecond), code)
			if code == 0 {
				t.Errorf("exit status 0 after SIGINT, want non-zero (interrupted)")
			}
			sum := parseReport(t, c.Proc)
			if sum.BytesWritten <= 0 || sum.Stalls < 1 {
				t.Errorf("report after SIGINT: bytes_written %d, stalls %d; want both > 0", sum.BytesWritten, sum.Stalls)
			}
			if sum.Completed {
				t.Errorf("report says completed after an interrupt")
			}
		})
	}
}

// stopServer sends SIGTERM and checks the server exits 0 within 6 s
// without waiting out its shutdown deadline.
func stopServer(t *testing.T, srv *Server) {
	t.Helper()
	srv.Signal(t, syscall.SIGTERM)
	began := time.Now()
	code := srv.Wait(t, 6*time.Second)
	t.Logf("server exited %s after SIGTERM with status %d", time.Since(began).Round(time.Millisecond), code)
	if code != 0 {
		t.Errorf("server exit status %d after SIGTERM, want 0; stderr:\n%s", code, srv.Stderr())
	}
	if len(srv.Logs("connections still open at shutdown deadline")) > 0 {
		t.Errorf("server waited out its shutdown deadline instead of closing its connections")
	}
}

// TestServerSIGTERM: the server exits within a few seconds of SIGTERM while
// TCP and WebSocket connections are open (one writing freely, one blocked on
// a reader the server paused).
func TestServerSIGTERM(t *testing.T) {
	t.Parallel()
	for _, paused := range []bool{false, true} {
		t.Run(fmt.Sprintf("paused=%v", paused), func(t *testing.T) {
			t.Parallel()
			var args []string
			if paused {
				args = []string{"--pause-after", "200ms", "--pause-for", "1m"}
			}
			srv := startServer(t, args...)
			var clients []*Client
			for _, proto := range protocols {
				clients = append(clients, startClient(t, "--target", proto.target(srv), "--duration", "1m", "--rate", "200"))
			}
			eventually(t, 10*time.Second, func() string {
				m := scrape(t, srv.MetricsURL())
				tcp, ws := m.Value(t, "bp_connections", "protocol", "tcp"), m.Value(t, "bp_connections", "protocol", "websocket")
				if tcp != 1 || ws != 1 {
					return fmt.Sprintf("server has %.0f tcp and %.0f websocket connections, want 1 each", tcp, ws)
				}
				return ""
			})
			stopServer(t, srv)
			// The clients see their connections end and fail.
			for _, c := range clients {
				sum, code := c.Finish(t, 10*time.Second)
				if code == 0 || sum.Completed {
					t.Errorf("client exit %d, completed %v after the server went away; want a failure", code, sum.Completed)
				}
			}
		})
	}
}
