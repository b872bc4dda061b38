package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitServerRead waits until the server has read at least one payload byte
// over proto, so a fault strikes mid-run.
func waitServerRead(t *testing.T, srv *Server, proto string) {
	t.Helper()
	eventually(t, 20*time.Second, func() string {
		if v, _ := scrape(t, srv.MetricsURL()).Get("bp_bytes_read_total", "protocol", proto); v == 0 {
			return "the server has read nothing yet"
		}
		return ""
	})
}

// TestServerKilledMidRun: a server killed with SIGKILL mid-run makes the
// client stop with exit status 1, an error that says the connection broke
// and how far it got, and a report with the bytes the server had
// acknowledged before it died.
func TestServerKilledMidRun(t *testing.T) {
	const count, size = 100, 16 << 10
	for _, proto := range []string{"tcp", "websocket"} {
		t.Run(proto, func(t *testing.T) {
			srv := startServer(t, "--sample-interval", "0")
			// 20 messages a second: 5 s if nothing breaks.
			c := startProc(t, "bp-client", nil, append(append([]string{}, clientDefaults...),
				"--target", serverTarget(srv, proto), "--rate", "20", "--count", strconv.Itoa(count),
				"--payload-size", strconv.Itoa(size), "--duration", "0")...)
			waitServerRead(t, srv, proto)
			time.Sleep(300 * time.Millisecond) // a few acks more
			srv.Signal(t, syscall.SIGKILL)
			code := c.Wait(t, 30*time.Second)
			sum := parseReport(t, c)
			if code != 1 {
				t.Fatalf("client exit %d, want 1; stderr:\n%s", code, c.Stderr())
			}
			if sum.Completed || !strings.Contains(sum.Error, "connection broke after") {
				t.Errorf("report completed=%v error %q: want a broken connection", sum.Completed, sum.Error)
			}
			if sum.BytesAcked <= 0 || sum.BytesAcked >= count*size || sum.BytesAcked > sum.BytesWritten {
				t.Errorf("report: %d bytes acked, %d written: want some of %d delivered", sum.BytesAcked, sum.BytesWritten, count*size)
			}
			if !strings.Contains(sum.Error, fmt.Sprintf("%d acknowledged by the server", sum.BytesAcked)) {
				t.Errorf("error %q does not name the %d bytes acknowledged", sum.Error, sum.BytesAcked)
			}
			logs := c.Logs("run failed")
			if len(logs) != 1 || logs[0]["bytes_acked"] != float64(sum.BytesAcked) {
				t.Errorf("run failed log %v: want one line with bytes_acked %d", logs, sum.BytesAcked)
			}
		})
	}
}

// TestReconnectAfterServerRestart: with --reconnect, a client whose server
// is killed mid-run connects again to a server restarted on the same port
// and completes the run: everything it was asked to send is acknowledged,
// the new server read what the old one had not acknowledged, and the report
// and metrics count the reconnects.
func TestReconnectAfterServerRestart(t *testing.T) {
	const count, size = 60, 8 << 10
	const total = count * size
	for _, proto := range []string{"tcp", "websocket"} {
		t.Run(proto, func(t *testing.T) {
			addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
			args := []string{"--sample-interval", "0", "--tcp-addr", addr}
			if proto == "websocket" {
				args = []string{"--sample-interval", "0", "--http-addr", addr}
			}
			srv := startServer(t, args...)
			c := startClient(t, "--target", serverTarget(srv, proto), "--reconnect", "--reconnect-backoff", "100ms",
				"--reconnect-backoff-max", "400ms", "--reconnect-max", "20", "--rate", "20",
				"--count", strconv.Itoa(count), "--payload-size", strconv.Itoa(size), "--duration", "0")
			waitServerRead(t, srv, proto)
			time.Sleep(500 * time.Millisecond) // some acks
			srv.Signal(t, syscall.SIGKILL)
			srv.Wait(t, 10*time.Second)
			time.Sleep(500 * time.Millisecond) // some attempts find nobody listening
			srv2 := startServer(t, args...)
			c.WaitLinger(t, 40*time.Second)
			cm := scrape(t, c.MetricsURL)
			sum, code := c.Finish(t, 10*time.Second)
			if code != 0 || !sum.Completed {
				t.Fatalf("client exit %d, report %+v; stderr:\n%s", code, sum, c.Stderr())
			}
			if sum.BytesAcked != total || sum.BytesWritten < total {
				t.Errorf("report: %d acked, %d written; want %d acked", sum.BytesAcked, sum.BytesWritten, total)
			}
			if sum.Reconnects < 1 || sum.FailedConns < 1 {
				t.Errorf("report: %d reconnects, %d failed connections; want at least 1 each", sum.Reconnects, sum.FailedConns)
			}
			if got := cm.Value(t, "bp_reconnects_total", "protocol", proto); got != float64(sum.Reconnects) {
				t.Errorf("bp_reconnects_total = %v, report says %d", got, sum.Reconnects)
			}
			if l := c.Logs("connection broke, reconnecting"); len(l) != int(sum.Reconnects) {
				t.Errorf("%d reconnect log lines, report says %d reconnects", len(l), sum.Reconnects)
			}
			// The new server read the rest: what the old one had not acknowledged.
			eventually(t, 5*time.Second, func() string {
				got := scrape(t, srv2.MetricsURL()).Value(t, "bp_bytes_read_total", "protocol", proto)
				if got <= 0 || got >= total {
					return fmt.Sprintf("the restarted server read %v bytes, want some of %d", got, total)
				}
				return ""
			})
		})
	}
}

// TestReconnectGivesUp: --reconnect-max bounds the attempts; with no
// server coming back the client fails with the last error.
func TestReconnectGivesUp(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	began := time.Now()
	sum, code, stderr := runClient(t, "--target", "tcp://"+addr, "--reconnect", "--reconnect-max", "3",
		"--reconnect-backoff", "50ms", "--reconnect-backoff-max", "100ms", "--count", "2", "--duration", "0")
	if code != 1 || sum.Completed {
		t.Fatalf("exit %d, completed %v; want a failed run; stderr:\n%s", code, sum.Completed, stderr)
	}
	if sum.Reconnects != 3 || !strings.Contains(sum.Error, "cannot reach the target") {
		t.Errorf("report: %d reconnects, error %q; want 3 and the dial error", sum.Reconnects, sum.Error)
	}
	if d := time.Since(began); d > 20*time.Second {
		t.Errorf("giving up took %s", d)
	}
}

// TestServerSIGTERMMidRun: a server stopped with SIGTERM closes its
// connections and exits 0 within Cloud Foundry's 10 s; the client sees the
// connection end before its run did, says so, and exits 1.
func TestServerSIGTERMMidRun(t *testing.T) {
	for _, proto := range []string{"tcp", "websocket"} {
		t.Run(proto, func(t *testing.T) {
			srv := startServer(t, "--sample-interval", "0")
			c := startProc(t, "bp-client", nil, append(append([]string{}, clientDefaults...),
				"--target", serverTarget(srv, proto), "--rate", "20", "--count", "100",
				"--payload-size", "4KiB", "--duration", "0")...)
			waitServerRead(t, srv, proto)
			time.Sleep(300 * time.Millisecond) // some acks
			srv.Signal(t, syscall.SIGTERM)
			if code := srv.Wait(t, 10*time.Second); code != 0 {
				t.Errorf("server exit %d after SIGTERM, want 0", code)
			}
			code := c.Wait(t, 30*time.Second)
			sum := parseReport(t, c)
			if code != 1 || sum.Completed {
				t.Fatalf("client exit %d, completed %v; want 1 and a failed run; stderr:\n%s", code, sum.Completed, c.Stderr())
			}
			clear := strings.Contains(sum.Error, "peer closed the connection before the run ended") ||
				strings.Contains(sum.Error, "connection reset by peer")
			if !strings.Contains(sum.Error, "connection broke after") || !clear {
				t.Errorf("error %q: want the connection named as closed by the server", sum.Error)
			}
			if sum.BytesAcked <= 0 {
				t.Errorf("report: %d bytes acked, want what the server read before it stopped", sum.BytesAcked)
			}
		})
	}
}
