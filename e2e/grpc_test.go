package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// grpcTarget is the --target of the server's gRPC service.
func (s *Server) grpcTarget() string { return "grpc://" + s.GRPCAddr }

// serverStreamTotals sums the server's "connection closed" lines of
// protocol grpc: payload read and written, and how many streams.
func serverStreamTotals(srv *Server) (read, written int64, streams int) {
	for _, l := range srv.Logs("connection closed") {
		if l["protocol"] != "grpc" {
			continue
		}
		r, _ := l["read_bytes"].(float64)
		w, _ := l["written_bytes"].(float64)
		read, written, streams = read+int64(r), written+int64(w), streams+1
	}
	return read, written, streams
}

// waitStreamTotals waits until the server has logged n gRPC streams closed
// and returns their payload totals (serverStreamTotals).
func waitStreamTotals(t *testing.T, srv *Server, n int) (read, written int64) {
	t.Helper()
	eventually(t, 5*time.Second, func() string {
		var streams int
		if read, written, streams = serverStreamTotals(srv); streams != n {
			return fmt.Sprintf("%d grpc streams closed in the server's log, want %d", streams, n)
		}
		return ""
	})
	return read, written
}

// TestGRPCDirect: up, down and both over gRPC straight to bp-server, two
// streams on each of two connections: every byte the client wrote the
// server read and every byte the server wrote the client read, to the
// byte, on all four streams.
func TestGRPCDirect(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{"up", "down", "both"} {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, "--sample-interval", "0", "--log-interval", "0")
			sum, code, stderr := runClient(t, "--target", srv.grpcTarget(), "--direction", dir,
				"--connections", "2", "--streams", "2", "--duration", "1s", "--payload-size", "32KiB")
			if code != 0 || !sum.Completed {
				t.Fatalf("bp-client exit %d, completed %v; stderr:\n%s", code, sum.Completed, lastLines(stderr, 10))
			}
			read, written := waitStreamTotals(t, srv, 4)
			if sum.BytesWritten != read || sum.BytesAcked != sum.BytesWritten {
				t.Errorf("client wrote %d (acked %d), server read %d", sum.BytesWritten, sum.BytesAcked, read)
			}
			if sum.BytesRead != written {
				t.Errorf("client read %d, server wrote %d", sum.BytesRead, written)
			}
			if (dir != "down") != (sum.BytesWritten > 0) || (dir != "up") != (sum.BytesRead > 0) {
				t.Errorf("%s run: client wrote %d and read %d bytes", dir, sum.BytesWritten, sum.BytesRead)
			}
			s := scrape(t, srv.MetricsURL())
			if got := s.Value(t, "bp_bytes_read_total", "protocol", "grpc"); int64(got) != read {
				t.Errorf("server bp_bytes_read_total{protocol=grpc} = %v, its log says %d", got, read)
			}
			if got := s.Value(t, "bp_connections_opened_total", "protocol", "grpc"); got != 4 {
				t.Errorf("server bp_connections_opened_total{protocol=grpc} = %v, want 4 streams", got)
			}
		})
	}
}

// TestGRPCPausedStreamBesideFastOne: a server that pauses its reads makes
// the slow stream's writes block (the report shows the wait and a stall)
// while the other stream on the same connection, read at full speed
// (--streams 2 --slow-streams 1), keeps moving: its bytes grow through the
// pause, the slow one's do not.
func TestGRPCPausedStreamBesideFastOne(t *testing.T) {
	t.Parallel()
	const pauseAfter, pauseFor = 500 * time.Millisecond, 2 * time.Second
	srv := startServer(t, "--sample-interval", "0", "--log-interval", "250ms",
		"--pause-after", pauseAfter.String(), "--pause-for", pauseFor.String())
	sum, code, stderr := runClient(t, "--target", srv.grpcTarget(), "--streams", "2", "--slow-streams", "1",
		"--duration", "3s", "--payload-size", "16KiB", "--rate", "1000")
	if code != 0 || !sum.Completed {
		t.Fatalf("bp-client exit %d, completed %v; stderr:\n%s", code, sum.Completed, lastLines(stderr, 10))
	}
	if sum.Stalls < 1 || sum.LongestStallSeconds < pauseFor.Seconds()/2 {
		t.Errorf("report: %d stalls, longest %.2fs: want the slow stream's writes blocked for most of the %s pause", sum.Stalls, sum.LongestStallSeconds, pauseFor)
	}
	// Each stream's progress lines in the middle of the pause: the slow
	// stream (0) read nothing from one to the next, the fast one (1) read on.
	read0, read1 := progressDuring(srv, 0, pauseAfter+pauseFor/4, pauseAfter+3*pauseFor/4), progressDuring(srv, 1, pauseAfter+pauseFor/4, pauseAfter+3*pauseFor/4)
	t.Logf("read in the middle of the pause: slow stream %d bytes, fast stream %d bytes", read0, read1)
	if read0 != 0 {
		t.Errorf("the paused stream read %d bytes in the middle of its pause, want 0", read0)
	}
	if read1 < 1<<20 {
		t.Errorf("the fast stream read only %d bytes while the other was paused: want it moving (stream-level backpressure)", read1)
	}
}

// progressDuring is how many bytes stream read between from and to after
// its connection opened, from the server's progress lines.
func progressDuring(srv *Server, stream float64, from, to time.Duration) int64 {
	var opened time.Time
	for _, l := range srv.Logs("connection opened") {
		if s, _ := l["stream"].(float64); s == stream {
			opened, _ = time.Parse(time.RFC3339Nano, fmt.Sprint(l["time"]))
		}
	}
	var first, last int64 = -1, -1
	for _, l := range srv.Logs("connection progress") {
		if s, _ := l["stream"].(float64); s != stream {
			continue
		}
		at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(l["time"]))
		read, _ := l["read_bytes"].(float64)
		if d := at.Sub(opened); d >= from && d <= to {
			if first < 0 {
				first = int64(read)
			}
			last = int64(read)
		}
	}
	if first < 0 {
		return -1
	}
	return last - first
}

// TestGRPCServerSIGTERM: with two gRPC streams open, one of them blocked on
// a reader the server paused, the server exits cleanly within a few
// seconds of SIGTERM: it ends both streams (logged at shutdown), sends
// GOAWAY, and the client sees its run fail.
func TestGRPCServerSIGTERM(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--pause-after", "200ms", "--pause-for", "1m", "--sample-interval", "0")
	c := startClient(t, "--target", srv.grpcTarget(), "--streams", "2", "--slow-streams", "1", "--duration", "1m", "--rate", "200")
	eventually(t, 10*time.Second, func() string {
		if n := scrape(t, srv.MetricsURL()).Value(t, "bp_connections", "protocol", "grpc"); n != 2 {
			return fmt.Sprintf("server has %.0f grpc streams open, want 2", n)
		}
		return ""
	})
	stopServer(t, srv)
	if n := len(srv.Logs("connection closed at shutdown")); n != 2 {
		t.Errorf("%d streams logged as closed at shutdown, want 2", n)
	}
	if sum, code := c.Finish(t, 10*time.Second); code == 0 || sum.Completed {
		t.Errorf("client exit %d, completed %v after the server went away; want a failure", code, sum.Completed)
	}
}

// TestGRPCS: grpcs:// against bp-server's gRPC listener with the
// certificate flags: a run in both directions, verified against the test
// CA, bytes conserved; a grpc:// (h2c) client at the same TLS port fails
// with the hint, and a client that does not trust the CA fails the
// handshake.
func TestGRPCS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "server")
	srv := startServer(t, append(pki.ServeArgs(), "--sample-interval", "0", "--log-interval", "0")...)
	sum, code, stderr := runClient(t, "--target", "grpcs://"+srv.GRPCAddr, "--ca-file", pki.CAFile,
		"--direction", "both", "--streams", "2", "--duration", "1s")
	if code != 0 || !sum.Completed {
		t.Fatalf("grpcs:// run: exit %d, completed %v; stderr:\n%s", code, sum.Completed, lastLines(stderr, 10))
	}
	read, written := waitStreamTotals(t, srv, 2)
	if sum.BytesWritten != read || sum.BytesRead != written || read == 0 || written == 0 {
		t.Errorf("grpcs://: client wrote %d and read %d; server read %d and wrote %d", sum.BytesWritten, sum.BytesRead, read, written)
	}
	_, code, stderr = runClient(t, "--target", srv.grpcTarget(), "--duration", "1s")
	if code == 0 || !strings.Contains(stderr, "grpcs:// TLS") {
		t.Errorf("grpc:// at a TLS port: exit %d, want a failure naming grpcs://; stderr:\n%s", code, lastLines(stderr, 5))
	}
	_, code, stderr = runClient(t, "--target", "grpcs://"+srv.GRPCAddr, "--duration", "1s")
	if code == 0 || !strings.Contains(stderr, "tls handshake") {
		t.Errorf("grpcs:// without the CA: exit %d, want a failed TLS handshake; stderr:\n%s", code, lastLines(stderr, 5))
	}
}
