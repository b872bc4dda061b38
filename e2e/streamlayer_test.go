package e2e

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// TestStreamLayerReport: bp-client over gRPC and over HTTP/2 to a real
// bp-server that pauses its reading, two streams on one connection, one
// read slowly (paused) and one at full speed (--streams 2 --slow-streams
// 1). The report's stream-layer section says the stop was at the stream
// layer: the slow stream's writes waited on its window for most of the
// pause, the kernel saw TCP's window (nearly) never shut, since the fast
// stream kept the socket read. Its figures are checked against
// references outside the stream layer: the layers' blocked times add up
// to the time the write calls themselves took (the session's clock), and
// the client's bp_stream_* metrics are the report's figures, and the
// stream window's closing the report names is the one the server's own
// pause schedule caused: by the server's bp_reads_paused, within a
// tolerance of when its reading paused (not gRPC's startup instant, the
// initial 64 KiB filled at 11 ms). In the pause the client's metrics show
// the shared socket counted once.
func TestStreamLayerReport(t *testing.T) {
	t.Parallel()
	const pauseAfter, pauseFor = 500 * time.Millisecond, 2500 * time.Millisecond
	for _, tc := range []struct{ protocol, scheme, path string }{
		{"grpc", "grpc://", ""},
		{"http2", "h2c://", "/h2"},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, "--pause-after", pauseAfter.String(), "--pause-for", pauseFor.String())
			addr := srv.HTTPAddr
			if tc.protocol == "grpc" {
				addr = srv.GRPCAddr
			}
			c := startClient(t, "--target", tc.scheme+addr+tc.path, "--streams", "2", "--slow-streams", "1",
				"--duration", "3500ms", "--payload-size", "16KiB", "--rate", "1000")
			began := time.Now()
			paused := pauseSeen(t, srv, tc.protocol, pauseAfter+2*time.Second)
			// In the pause: two streams on one socket, which the sampler
			// reads once; one of the two streams' windows shut.
			time.Sleep(time.Until(began.Add(pauseAfter + pauseFor/2 - 200*time.Millisecond))) // from the client's start, less its own start
			mid := scrape(t, c.MetricsURL)
			for name, want := range map[string]float64{"bp_connections": 2, "bp_socket_sampled_connections": 1,
				"bp_stream_sampled_streams": 2, "bp_stream_window_closed_streams": 1} {
				if got := mid.Value(t, name, "protocol", tc.protocol); got != want {
					t.Errorf("in the pause: %s{protocol=%q} = %v, want %v", name, tc.protocol, got, want)
				}
			}
			c.WaitLinger(t, time.Minute)
			m := scrape(t, c.MetricsURL)
			sum := parseReport(t, c.Proc) // printed before it lingers
			defer func() {
				if _, code := c.Finish(t, 10*time.Second); code != 0 {
					t.Errorf("bp-client exit %d; stderr:\n%s", code, lastLines(c.Stderr(), 10))
				}
			}()
			if !sum.Completed {
				t.Fatalf("bp-client's run did not complete: %s; stderr:\n%s", sum.Error, lastLines(c.Stderr(), 10))
			}
			l := sum.StreamLayer
			if l == nil {
				t.Fatalf("no stream_layer in the report: %+v", sum)
			}
			t.Logf("stream layer: %+v; report blocked %.3f s", *l, sum.BlockedSeconds)
			if sum.Connections != 1 || sum.Streams != 2 || l.Streams != 2 || l.Connections != 1 {
				t.Errorf("report: %d connection(s), %d streams; stream layer %d streams on %d connection(s); want 2 streams on 1", sum.Connections, sum.Streams, l.Streams, l.Connections)
			}
			if l.Stop != "stream" || !strings.Contains(l.Summary, ": the stop was at the stream layer") {
				t.Errorf("stop %q: %q; want the stream layer", l.Stop, l.Summary)
			}
			if l.BlockedStreamWindowSeconds < pauseFor.Seconds()/2 || l.StreamWindowClosedAtSeconds == nil {
				t.Errorf("writes waited %.2f s on the stream window, closed at %v: want most of the %s pause, and when", l.BlockedStreamWindowSeconds, l.StreamWindowClosedAtSeconds, pauseFor)
			} else {
				checkClosedAtPause(t, c, *l.StreamWindowClosedAtSeconds, paused)
			}
			if l.TCPWindowZeroSeconds == nil || *l.TCPWindowZeroSeconds > pauseFor.Seconds()/4 {
				t.Errorf("TCP's window zero for %v s: want it (nearly) never shut, the fast stream reading on", l.TCPWindowZeroSeconds)
			}
			if l.SendStreamWindowLowestBytes == nil || *l.SendStreamWindowLowestBytes != 0 || l.WindowUpdatesReceived == 0 {
				t.Errorf("lowest send stream window %v, %d WINDOW_UPDATEs received: want 0 and some", l.SendStreamWindowLowestBytes, l.WindowUpdatesReceived)
			}
			// The layers split the write calls' waits, so their sum is at
			// most the blocked time the session measured around each call.
			// That clock also holds each call's own time where nothing
			// waited (HTTP/2 counts a socket write as TCP's from 1 ms):
			// at 1000 writes/s a stream on a busy machine, up to a third
			// of it was seen (2.47 s of layers against 3.30 s).
			layers := l.BlockedStreamWindowSeconds + l.BlockedConnectionWindowSeconds + l.BlockedTCPSeconds
			if layers < 0.5*sum.BlockedSeconds || layers > 1.1*sum.BlockedSeconds+0.05 {
				t.Errorf("blocked by layer %.3f s in all, the write calls' own clock %.3f s: want them to agree", layers, sum.BlockedSeconds)
			}
			// The metrics are the report's figures (one round: both count
			// from the start).
			for layer, want := range map[string]float64{"stream": l.BlockedStreamWindowSeconds, "connection": l.BlockedConnectionWindowSeconds, "tcp": l.BlockedTCPSeconds} {
				if got := m.Value(t, "bp_stream_blocked_seconds_total", "protocol", tc.protocol, "layer", layer); math.Abs(got-want) > 1e-6 {
					t.Errorf("bp_stream_blocked_seconds_total{layer=%q} = %v, the report says %v", layer, got, want)
				}
			}
			if got := m.Value(t, "bp_stream_window_updates_total", "protocol", tc.protocol, "direction", "received"); got != float64(l.WindowUpdatesReceived) {
				t.Errorf("bp_stream_window_updates_total{received} = %v, the report says %d", got, l.WindowUpdatesReceived)
			}
			// The gauges leave with the streams at the sampler's next pass.
			eventually(t, 2*time.Second, func() string {
				if got := scrape(t, c.MetricsURL).Value(t, "bp_stream_sampled_streams", "protocol", tc.protocol); got != 0 {
					return fmt.Sprintf("bp_stream_sampled_streams = %v after the run, want 0 (every stream closed)", got)
				}
				return ""
			})
		})
	}
}

// pausedBetween brackets when the server's own pause schedule paused a
// reader: after the start of the last scrape of its bp_reads_paused that
// showed none, by the end of the first that showed one.
type pausedBetween struct{ after, by time.Time }

// pauseSeen is when the server paused a reader of protocol's, by its
// bp_reads_paused polled every 10 ms: the reference for the client's
// "stream window closed at". The bracket is a poll wide on a quiet
// machine; on a busy one a race-built server's scrape takes hundreds of
// ms (a run saw the pause "by" 0.4 s after it was due), so the scrape's
// own time is inside the bracket, not added to the pause.
func pauseSeen(t *testing.T, srv *Server, protocol string, within time.Duration) pausedBetween {
	t.Helper()
	after := time.Now()
	for deadline := after.Add(within); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		began := time.Now()
		if v, _ := scrape(t, srv.MetricsURL()).Get("bp_reads_paused", "protocol", protocol); v >= 1 {
			return pausedBetween{after: after, by: time.Now()}
		}
		after = began
	}
	t.Fatalf("the server paused no %s reader within %s", protocol, within)
	return pausedBetween{}
}

// checkClosedAtPause checks the stream window's closing the report names
// (closedAt, seconds from the client's run start) against when the server
// paused its reading: the window shuts once the paused stream's window
// fills, after the pause began (here within 0.6 s at 16 MB/s), and the
// pause is known to within its bracket; the run started a few ms after
// the client logged its start, the clock of both here. A report that
// named gRPC's startup instant (11 ms) would be 0.3 s or more early.
func checkClosedAtPause(t *testing.T, c *Client, closedAt float64, paused pausedBetween) {
	t.Helper()
	l := c.WaitLog(t, "bp-client starting", time.Second)
	logged, err := time.Parse(time.RFC3339Nano, fmt.Sprint(l["time"]))
	if err != nil {
		t.Fatalf("bp-client's start log has no time: %v", l)
	}
	after, by := paused.after.Sub(logged).Seconds(), paused.by.Sub(logged).Seconds()
	t.Logf("stream window closed at %.3f s, the server's reading paused between %.3f s and %.3f s (from the client's start)", closedAt, after, by)
	if closedAt < after-0.2 || closedAt > by+0.6 {
		t.Errorf("the report's stream window closed at %.3f s, the server paused its reading between %.3f s and %.3f s: want the closing that held, within -0.2 s..+0.6 s of the pause", closedAt, after, by)
	}
}
