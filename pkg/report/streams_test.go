package report_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/report"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// fakeStreams is a StreamSource: the base at SetStreams, then the run's.
type fakeStreams struct {
	reads        int
	base, totals sockstat.StreamTotals
}

func (f *fakeStreams) StreamTotals() sockstat.StreamTotals {
	f.reads++
	if f.reads == 1 {
		return f.base
	}
	return f.totals
}

func (f *fakeStreams) ResetPeak() {}

// TestReportStreamLayer: a run of 8 streams on 2 connections, one stream
// of each connection paused behind a peer that multiplexes: the report
// says streams where its write figures sum over them ("over 8 streams on
// 2 connections"), connections where the kernel's sum over sockets, and
// has the stream-layer section, in text and JSON, with the counters
// counted from SetStreams.
func TestReportStreamLayer(t *testing.T) {
	start := time.Now()
	base := sockstat.StreamTotals{StreamCounters: sockstat.StreamCounters{BlockedStream: time.Second, WindowUpdatesReceived: 50}}
	run := base
	run.BlockedStream += 7900 * time.Millisecond
	run.BlockedTCP = 30 * time.Millisecond
	run.WindowUpdatesReceived += 120
	run.WindowUpdatesSent = 4
	run.Streams, run.ClosedStreams = 8, 2
	run.SendStreamWindowLowest, run.SendConnWindowLowest, run.RecvStreamWindowLowest, run.RecvConnWindowLowest = 0, 524_288, 65_535, -1
	// The stream window first shut for an instant at 11 ms; the closing
	// that held began at 2.1 s, and is the one the report names.
	run.StreamClosedAt, run.StreamHeldAt, run.Sources = start.Add(11*time.Millisecond), start.Add(2100*time.Millisecond), []string{"frames"}

	rec := report.NewRecorder()
	rec.SetKernel(&fakeKernel{totals: sockstat.Totals{Has: sockstat.FieldPeerWindow},
		then: &sockstat.Totals{Has: sockstat.FieldPeerWindow, Counters: sockstat.Counters{}}})
	rec.SetStreams(&fakeStreams{base: base, totals: run})
	for range 8 { // every stream is a run: 1 s blocked each
		c := rec.Open(flow.ConnInfo{Protocol: flow.TCP, Writes: true})
		c.Wrote(1000, time.Second, true)
		c.Acked(1000)
		c.Closed(nil)
	}
	sum := rec.Summarize(report.Run{RunID: "s", Target: "h2c://x:1", Direction: flow.Up, Connections: 2, Streams: 4,
		PayloadSize: 1000, StallThreshold: 100 * time.Millisecond, Start: start}, 10*time.Second, nil)

	text, js := rendered(t, sum)
	for _, want := range []string{
		"direction up, 2 connection(s), 8 stream(s)\n",
		"blocked          in all 8.00 s in write calls over 8 streams on 2 connections, 1.00 s per stream, 10% of the run each",
		// The kernel's figures sum over sockets, each counted once.
		"peer window      zero in all 0s over 2 connections, 0s per connection",
		"stream layer     8 stream(s) on 2 connection(s); figures from this side's own frames (exact)",
		"blocked on       stream window 7.9s, connection window 0s, TCP 30ms (in all, summed over 8 streams on 2 connections)",
		"send windows     lowest: stream 0 (shut), connection 524.3 kB (524288 bytes)",
		"recv windows     lowest: stream 65.5 kB (65535 bytes), connection unknown",
		"window updates   120 received, 4 sent",
		"stopped at       the stream window closed at 2.1 s (2 of 8 streams); TCP's never did: the stop was at the\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text report lacks %q:\n%s", want, text)
		}
	}

	var got struct {
		Connections, Streams int
		BlockedShare         float64        `json:"blocked_share"`
		StreamLayer          map[string]any `json:"stream_layer"`
	}
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	if got.Connections != 2 || got.Streams != 8 || got.BlockedShare != 0.1 {
		t.Errorf("connections %d, streams %d, blocked share %v; want 2, 8, 0.1 (8 s of 8 streams' 80 s)", got.Connections, got.Streams, got.BlockedShare)
	}
	l := got.StreamLayer
	for k, want := range map[string]any{
		"stop": "stream", "streams": 8.0, "connections": 2.0, "blocked_stream_window_seconds": 7.9,
		"blocked_connection_window_seconds": 0.0, "blocked_tcp_seconds": 0.03, "streams_window_closed": 2.0,
		"send_stream_window_lowest_bytes": 0.0, "send_connection_window_lowest_bytes": 524288.0,
		"recv_stream_window_lowest_bytes": 65535.0, "window_updates_received": 120.0, "window_updates_sent": 4.0,
		"tcp_window_zero_seconds": 0.0, "source": "from this side's own frames (exact)",
	} {
		if l[k] != want {
			t.Errorf("stream_layer.%s = %v, want %v", k, l[k], want)
		}
	}
	if at, _ := l["stream_window_closed_at_seconds"].(float64); at < 2.099 || at > 2.101 {
		t.Errorf("stream_layer.stream_window_closed_at_seconds = %v, want 2.1", l["stream_window_closed_at_seconds"])
	}
	if _, ok := l["recv_connection_window_lowest_bytes"]; ok {
		t.Error("an unknown window is in the JSON; want it left out")
	}
}
