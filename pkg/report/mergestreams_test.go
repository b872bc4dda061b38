package report

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// TestMergeStreamLayer: two instances' stream layers, one stopped at the
// stream layer and one at the connection's window, merge into the sums of
// their times and counts, the least of their windows, the earliest
// closings that held, as each report says (a's connection window closed
// at 0.03 s for moments, 0.05 s of waits, and did not hold; b's held from
// 0.4 s: the fleet's closed at 0.4 s, and held), and the stop the fleet's own figures put at the connection's
// window (1.55 s of 4.15 s waited there), in the words an instance's own
// report would use; in JSON and in text.
func TestMergeStreamLayer(t *testing.T) {
	const src = "from this side's own frames (exact)"
	a, b := instanceReport("f", 0, 2, 1000, verdict.OutcomeBlocked), instanceReport("f", 1, 2, 3000, verdict.OutcomeBlocked)
	a.Streams, b.Streams = 2, 2
	a.StreamLayer = &verdict.StreamLayer{Stop: verdict.StopStream, Source: src, Streams: 2, Connections: 1,
		BlockedStreamWindowSeconds: 2, BlockedConnectionWindowSeconds: 0.05, BlockedTCPSeconds: 0.3, StreamsWindowClosed: 2,
		StreamWindowClosedAtSeconds: ptr(0.6), ConnectionWindowClosedAtSeconds: ptr(0.03), TCPWindowZeroSeconds: ptr(0.01), StreamWindowHeld: true,
		SendStreamWindowLowestBytes: ptr[int64](0), SendConnectionWindowLowestBytes: ptr[int64](1000),
		RecvStreamWindowLowestBytes: ptr[int64](65535), WindowUpdatesReceived: 100, WindowUpdatesSent: 10}
	b.StreamLayer = &verdict.StreamLayer{Stop: verdict.StopConnection, Source: src + "; estimated: polls", Streams: 2, Connections: 1,
		BlockedStreamWindowSeconds: 0.2, BlockedConnectionWindowSeconds: 1.5, BlockedTCPSeconds: 0.1, StreamsWindowClosed: 1,
		ConnectionWindowClosedAtSeconds: ptr(0.4), TCPWindowZeroSeconds: ptr(0.02), TCPWindowClosedAtSeconds: ptr(0.9), ConnectionWindowHeld: true,
		SendStreamWindowLowestBytes: ptr[int64](500), SendConnectionWindowLowestBytes: ptr[int64](0),
		RecvStreamWindowLowestBytes: ptr[int64](70000), RecvConnectionWindowLowestBytes: ptr[int64](30000),
		WindowUpdatesReceived: 50, WindowUpdatesSent: 5}
	got, err := ReadReports("logs.txt", strings.NewReader(jsonOf(t, a, b)))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := Merge(got)
	if err != nil {
		t.Fatal(err)
	}
	l := fs.StreamLayer
	if l == nil {
		t.Fatal("no stream_layer in the merged report")
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
	val := func(p *int64) int64 {
		if p == nil {
			return -1
		}
		return *p
	}
	at := func(p *float64) float64 {
		if p == nil {
			return -1
		}
		return *p
	}
	switch {
	case fs.Streams != 4 || l.Streams != 4 || l.Connections != 2 || l.StreamsWindowClosed != 3:
		t.Errorf("%d streams, stream layer %d on %d connections, %d closed; want 4 on 2, 3 closed", fs.Streams, l.Streams, l.Connections, l.StreamsWindowClosed)
	case !near(l.BlockedStreamWindowSeconds, 2.2) || !near(l.BlockedConnectionWindowSeconds, 1.55) || !near(l.BlockedTCPSeconds, 0.4):
		t.Errorf("blocked stream %v, connection %v, tcp %v; want 2.2, 1.55, 0.4", l.BlockedStreamWindowSeconds, l.BlockedConnectionWindowSeconds, l.BlockedTCPSeconds)
	case l.TCPWindowZeroSeconds == nil || !near(*l.TCPWindowZeroSeconds, 0.03):
		t.Errorf("tcp window zero %v, want 0.03", l.TCPWindowZeroSeconds)
	case !near(at(l.StreamWindowClosedAtSeconds), 0.6) || !near(at(l.ConnectionWindowClosedAtSeconds), 0.4) || !near(at(l.TCPWindowClosedAtSeconds), 0.9):
		t.Errorf("closed at: stream %v, connection %v, tcp %v; want 0.6, 0.4, 0.9", at(l.StreamWindowClosedAtSeconds), at(l.ConnectionWindowClosedAtSeconds), at(l.TCPWindowClosedAtSeconds))
	case val(l.SendStreamWindowLowestBytes) != 0 || val(l.SendConnectionWindowLowestBytes) != 0 ||
		val(l.RecvStreamWindowLowestBytes) != 65535 || val(l.RecvConnectionWindowLowestBytes) != 30000:
		t.Errorf("lowest windows: send %d, %d; recv %d, %d; want 0, 0; 65535, 30000", val(l.SendStreamWindowLowestBytes),
			val(l.SendConnectionWindowLowestBytes), val(l.RecvStreamWindowLowestBytes), val(l.RecvConnectionWindowLowestBytes))
	case !l.StreamWindowHeld || !l.ConnectionWindowHeld || l.TCPWindowHeld:
		t.Errorf("held: stream %v, connection %v, tcp %v; want true, true, false", l.StreamWindowHeld, l.ConnectionWindowHeld, l.TCPWindowHeld)
	case l.WindowUpdatesReceived != 150 || l.WindowUpdatesSent != 15:
		t.Errorf("window updates %d received, %d sent; want 150, 15", l.WindowUpdatesReceived, l.WindowUpdatesSent)
	case l.Stop != verdict.StopConnection || !strings.Contains(l.Summary, ": the stop was at the connection's window"):
		t.Errorf("stop %q: %q; want the connection's window", l.Stop, l.Summary)
	case l.Source != src+"; estimated: polls":
		t.Errorf("source %q", l.Source)
	}
	var buf bytes.Buffer
	if err := fs.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back struct {
		StreamLayer verdict.StreamLayer `json:"stream_layer"`
	}
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back.StreamLayer.Stop != verdict.StopConnection || back.StreamLayer.WindowUpdatesReceived != 150 || !back.StreamLayer.ConnectionWindowHeld {
		t.Errorf("JSON stream_layer %+v (%v)", back.StreamLayer, err)
	}
	buf.Reset()
	if err := fs.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, want := range []string{"4 stream(s) on 2 connection(s)", "window updates   150 received, 15 sent",
		"lowest: stream 0 (shut), connection 0 (shut)", "stopped at", "2 stream(s) stopped at: stream", "2 stream(s) stopped at: connection"} {
		if !strings.Contains(text, want) {
			t.Errorf("text report has no %q:\n%s", want, text)
		}
	}
}

// TestMergeNoStreamLayer: instances without streams merge into a report
// without a stream layer.
func TestMergeNoStreamLayer(t *testing.T) {
	fs, err := Merge([]Named{{File: "a", Summary: instanceReport("f", 0, 2, 1, verdict.OutcomeBlocked)},
		{File: "b", Summary: instanceReport("f", 1, 2, 1, verdict.OutcomeBlocked)}})
	if err != nil || fs.StreamLayer != nil {
		t.Errorf("merge: %v, stream layer %+v; want none", err, fs.StreamLayer)
	}
}
