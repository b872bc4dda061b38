package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/report"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// TestFleetStreamLayerMerge: a fleet of two bp-clients over h2c:// to a
// real bp-server that pauses its reading, each with two streams on its one
// connection, one of them read slowly. bp-client merge of their reports
// has a stream_layer whose times and counts are the sums of the
// instances', whose windows are the least of theirs, and whose stop is
// the stream layer as each instance's was; the WINDOW_UPDATEs the clients
// received are at most what the server's own HTTP/2 tap counted it sent.
func TestFleetStreamLayerMerge(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--pause-after", "500ms", "--pause-for", "2500ms")
	dir := t.TempDir()
	var procs []*Proc
	for i := range 2 {
		args := append(append([]string{}, clientDefaults...), "--target", "h2c://"+srv.HTTPAddr+"/h2",
			"--streams", "2", "--slow-streams", "1", "--duration", "3500ms", "--payload-size", "16KiB", "--rate", "1000",
			"--fleet", "e2e-streams", "--instances", "2", "--instance", fmt.Sprint(i), "--connections", "2")
		procs = append(procs, startProc(t, "bp-client", nil, args...))
	}
	var files []string
	var sums []report.Summary
	for i, p := range procs {
		if code := p.Wait(t, time.Minute); code != 0 {
			t.Fatalf("instance %d: exit %d; stderr:\n%s", i, code, lastLines(p.Stderr(), 10))
		}
		s := parseReport(t, p)
		if s.StreamLayer == nil || s.StreamLayer.Streams != 2 {
			t.Fatalf("instance %d: stream layer %+v, want 2 streams", i, s.StreamLayer)
		}
		t.Logf("instance %d: stop %s, blocked stream %.3f s, connection %.3f s, tcp %.3f s, %d updates received", i, s.StreamLayer.Stop,
			s.StreamLayer.BlockedStreamWindowSeconds, s.StreamLayer.BlockedConnectionWindowSeconds, s.StreamLayer.BlockedTCPSeconds, s.StreamLayer.WindowUpdatesReceived)
		sums = append(sums, s)
		path := filepath.Join(dir, fmt.Sprintf("instance-%d.json", i))
		if err := os.WriteFile(path, []byte(p.Stderr()+p.Stdout()), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	out, err := exec.Command(binary("bp-client"), append([]string{"merge", "--output", "json"}, files...)...).Output()
	if err != nil {
		t.Fatalf("bp-client merge: %v", err)
	}
	var fs report.FleetSummary
	if err := json.Unmarshal(out, &fs); err != nil {
		t.Fatalf("merged report: %v\n%s", err, out)
	}
	checkMergedStreamLayer(t, fs.StreamLayer, sums[0].StreamLayer, sums[1].StreamLayer)
	sent := scrape(t, srv.MetricsURL()).Value(t, "bp_http2_frames_sent_total", "type", "WINDOW_UPDATE")
	if l := fs.StreamLayer; l != nil && (l.WindowUpdatesReceived == 0 || float64(l.WindowUpdatesReceived) > sent) {
		t.Errorf("the fleet received %d WINDOW_UPDATEs, the server's tap counted %v sent: want some, at most those", l.WindowUpdatesReceived, sent)
	}
	text, err := exec.Command(binary("bp-client"), append([]string{"merge"}, files...)...).Output()
	words := strings.Join(strings.Fields(string(text)), " ") // the verdict's words wrap
	if err != nil || !strings.Contains(words, "stream layer 4 stream(s) on 2 connection(s)") || !strings.Contains(words, "the stop was at the stream layer") {
		t.Errorf("merged text report (%v):\n%s", err, text)
	}
}

// checkMergedStreamLayer: the fleet's stream layer is made of the two
// instances' (a, b) as Merge says.
func checkMergedStreamLayer(t *testing.T, l, a, b *verdict.StreamLayer) {
	t.Helper()
	if l == nil {
		t.Fatal("no stream_layer in the merged report")
	}
	least := func(x, y *int64) int64 {
		if x == nil || y == nil {
			t.Fatalf("a lowest window unknown: %v, %v", x, y)
		}
		return min(*x, *y)
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-6 }
	switch {
	case l.Streams != 4 || l.Connections != 2 || l.StreamsWindowClosed != a.StreamsWindowClosed+b.StreamsWindowClosed:
		t.Errorf("merged %d streams on %d connections, %d closed; want 4 on 2, %d closed", l.Streams, l.Connections, l.StreamsWindowClosed, a.StreamsWindowClosed+b.StreamsWindowClosed)
	case !near(l.BlockedStreamWindowSeconds, a.BlockedStreamWindowSeconds+b.BlockedStreamWindowSeconds) ||
		!near(l.BlockedConnectionWindowSeconds, a.BlockedConnectionWindowSeconds+b.BlockedConnectionWindowSeconds) ||
		!near(l.BlockedTCPSeconds, a.BlockedTCPSeconds+b.BlockedTCPSeconds):
		t.Errorf("merged blocked %v/%v/%v s, not the instances' sums (%+v, %+v)", l.BlockedStreamWindowSeconds, l.BlockedConnectionWindowSeconds, l.BlockedTCPSeconds, *a, *b)
	case l.WindowUpdatesReceived != a.WindowUpdatesReceived+b.WindowUpdatesReceived || l.WindowUpdatesSent != a.WindowUpdatesSent+b.WindowUpdatesSent:
		t.Errorf("merged WINDOW_UPDATEs %d received, %d sent; not the instances' sums", l.WindowUpdatesReceived, l.WindowUpdatesSent)
	case *l.SendStreamWindowLowestBytes != least(a.SendStreamWindowLowestBytes, b.SendStreamWindowLowestBytes) ||
		*l.RecvConnectionWindowLowestBytes != least(a.RecvConnectionWindowLowestBytes, b.RecvConnectionWindowLowestBytes):
		t.Errorf("merged lowest windows %d, %d; not the instances' least", *l.SendStreamWindowLowestBytes, *l.RecvConnectionWindowLowestBytes)
	case a.Stop == verdict.StopStream && b.Stop == verdict.StopStream && l.Stop != verdict.StopStream:
		t.Errorf("merged stop %q (%s), both instances' was the stream layer", l.Stop, l.Summary)
	}
	t.Logf("merged: stop %s: %s", l.Stop, l.Summary)
}
