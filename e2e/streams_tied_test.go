package e2e

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// TestStreamsTied: four HTTP/2 streams on one connection, the server
// pausing the first (--slow-streams 1) for 2 s and reading the others at
// full speed. Directly to bp-server the report says the streams were kept
// apart; through HAProxy in HTTP mode with h2 on both sides (which
// demultiplexes a connection in order, so a full stream buffer stops
// every stream behind it) it says they were tied. Each group's bytes are
// checked against what the server logged reading.
func TestStreamsTied(t *testing.T) {
	t.Parallel()
	for _, hop := range []string{"direct", "haproxy"} {
		t.Run(hop, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, "--sample-interval", "0", "--pause-after", "300ms", "--pause-for", "2s")
			addr := srv.HTTPAddr
			want := verdict.StreamsApart
			if hop == "haproxy" {
				addr, want = startH2HAProxy(t, srv.HTTPAddr), verdict.StreamsTiedOn
			}
			sum, code, stderr := runClient(t, "--target", "h2c://"+addr+"/h2", "--duration", "2500ms",
				"--streams", "4", "--slow-streams", "1", "--payload-size", "16KiB", "--rate", "200")
			if code != 0 || !sum.Completed {
				t.Fatalf("client exit %d, completed %v\nstderr:\n%s", code, sum.Completed, lastLines(stderr, 20))
			}
			l := sum.StreamLayer
			if l == nil || l.StreamGroups == nil || l.StreamsTied == nil {
				t.Fatalf("no slow and fast streams in the report's stream layer: %+v", l)
			}
			g := l.StreamGroups
			t.Logf("%s: slow %+v; fast %+v; %s: %s", hop, g.Slow, g.Fast, l.StreamsTied.Conclusion, l.StreamsTied.Summary)
			if l.StreamsTied.Conclusion != want {
				t.Errorf("%s: streams %s, want %s", hop, l.StreamsTied.Conclusion, want)
			}
			if g.Slow.Streams != 1 || g.Fast.Streams != 3 {
				t.Errorf("groups of %d slow and %d fast streams, want 1 and 3", g.Slow.Streams, g.Fast.Streams)
			}
			checkGroupBytes(t, srv, sum.RunID, sum.DurationSeconds, g)
		})
	}
}

// checkGroupBytes compares each group's bytes with the server's log of
// the run's streams: the slow stream's bytes are one stream's read, and
// the fast ones' the others'. (Tied, the streams read alike: the log does
// not say which is which, so the slow one is any that matches.)
func checkGroupBytes(t *testing.T, srv *Server, runID string, secs float64, g *verdict.StreamGroups) {
	t.Helper()
	var reads []float64
	eventually(t, 10*time.Second, func() string {
		reads = reads[:0]
		for _, l := range append(srv.Logs("connection closed"), srv.Logs("connection failed")...) {
			if l["run"] == runID {
				n, _ := l["read_bytes"].(float64)
				reads = append(reads, n)
			}
		}
		if len(reads) != 4 {
			return fmt.Sprintf("%d streams of run %s logged, want 4", len(reads), runID)
		}
		return ""
	})
	slow := g.Slow.BytesAckedPerSecond * secs
	fast := g.Fast.BytesAckedPerSecond * secs * 3
	i := slices.IndexFunc(reads, func(n float64) bool { return math.Abs(n-slow) <= 1 })
	total := reads[0] + reads[1] + reads[2] + reads[3]
	if i < 0 || math.Abs(slow+fast-total) > 4 {
		t.Errorf("report: slow stream %.0f bytes, fast ones %.0f; server read %v", slow, fast, reads)
	}
}

// startH2HAProxy starts HAProxy with deploy/haproxy/haproxy-h2.cfg (h2c on
// both sides) in front of bp-server's HTTP listener.
func startH2HAProxy(t *testing.T, upstream string) string {
	t.Helper()
	return startHAProxy(t, "haproxy-h2.cfg", upstream)
}
