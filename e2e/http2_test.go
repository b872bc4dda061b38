package e2e

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// HTTP/2 end to end: bp-client's h2c:// and https:// targets against
// bp-server's HTTP listener, every stream a run, the bytes counted on both
// ends and compared to the byte.

// serverTotals sums the server's last lines of one run's streams
// ("connection closed", or "connection failed"): bytes read and written,
// and how many streams ended with an error.
func serverTotals(srv *Server, runID string) (read, written int64, streams, errs int) {
	for _, l := range append(srv.Logs("connection closed"), srv.Logs("connection failed")...) {
		if l["run"] != runID {
			continue
		}
		r, _ := l["read_bytes"].(float64)
		w, _ := l["written_bytes"].(float64)
		read += int64(r)
		written += int64(w)
		streams++
		if l["err"] != nil {
			errs++
		}
	}
	return read, written, streams, errs
}

// TestHTTP2Directions: up, down and both over h2c and over TLS (ALPN h2),
// two streams on each of two connections: the client's report and the
// server's log agree to the byte, and every stream ended cleanly.
func TestHTTP2Directions(t *testing.T) {
	pki := newTestPKI(t, "server")
	plain := startServer(t)
	tlsSrv := startServer(t, pki.ServeArgs()...)
	const count, size, conns, streams = 40, 20000, 2, 2 // 20000: frames that do not divide the windows
	const total = count * size * conns * streams
	for _, tc := range []struct {
		name   string
		srv    *Server
		target string
		extra  []string
	}{
		{"h2c", plain, "h2c://" + plain.HTTPAddr + "/h2", nil},
		{"tls", tlsSrv, "https://" + tlsSrv.HTTPAddr + "/h2", []string{"--ca-file", pki.CAFile}},
	} {
		for _, dir := range []string{"up", "down", "both"} {
			t.Run(tc.name+"/"+dir, func(t *testing.T) {
				args := append([]string{"--target", tc.target, "--direction", dir, "--count", strconv.Itoa(count),
					"--payload-size", strconv.Itoa(size), "--duration", "0", "--connections", strconv.Itoa(conns),
					"--streams", strconv.Itoa(streams)}, tc.extra...)
				sum, code, stderr := runClient(t, args...)
				if code != 0 || !sum.Completed {
					t.Fatalf("client exit %d, report %+v\nstderr:\n%s", code, sum, lastLines(stderr, 20))
				}
				var read, written int64
				var n, errs int
				eventually(t, 10*time.Second, func() string {
					read, written, n, errs = serverTotals(tc.srv, sum.RunID)
					if n < conns*streams {
						return fmt.Sprintf("server logged %d streams of run %s, want %d", n, sum.RunID, conns*streams)
					}
					return ""
				})
				if errs != 0 {
					t.Errorf("%d of the server's streams ended with an error: %v", errs, tc.srv.Logs("connection closed"))
				}
				if dir != "down" && (sum.BytesWritten != total || read != total || sum.BytesAcked != total) {
					t.Errorf("up: client wrote %d (acked %d), server read %d; want %d", sum.BytesWritten, sum.BytesAcked, read, total)
				}
				if dir != "up" && (sum.BytesRead != written || written != total) {
					t.Errorf("down: server wrote %d, client read %d; want %d", written, sum.BytesRead, total)
				}
			})
		}
	}
}
