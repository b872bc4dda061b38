package report_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/report"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// indexStream is a flow.StreamConn that only has its place.
type indexStream int

func (s indexStream) StreamIndex() int              { return int(s) }
func (s indexStream) StreamLayer() flow.StreamStats { return flow.StreamStats{} }

// rendered is the summary's text and JSON reports.
func rendered(t *testing.T, sum report.Summary) (string, []byte) {
	t.Helper()
	var text, js bytes.Buffer
	if err := sum.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := sum.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	return text.String(), js.Bytes()
}

// TestReportStreamGroups: 2 connections of 4 streams, --slow-streams 1,
// 10 s: the slow streams (index 0) held 8 s each in a stall, the fast
// ones blocked 6 s each, 5 s of it in a stall: the report groups them by
// index, per stream, and says in text and JSON that the path tied them.
func TestReportStreamGroups(t *testing.T) {
	rec := report.NewRecorder()
	rec.SetStreams(&fakeStreams{totals: sockstat.StreamTotals{Streams: 8}})
	for range 2 {
		for k := range 4 {
			c := rec.Open(flow.ConnInfo{Protocol: flow.TCP, Writes: true, Stream: indexStream(k)})
			if k == 0 {
				c.Wrote(1_000_000, 8*time.Second, true)
				c.Acked(1_000_000)
			} else {
				c.Wrote(2_000_000, 5*time.Second, true)
				c.Wrote(1_000_000, time.Second, false) // blocked, but under the stall threshold
				c.Acked(3_000_000)
			}
			c.Closed(nil)
		}
	}
	run := report.Run{RunID: "g", Target: "h2c://x:1", Direction: flow.Up, Connections: 2, Streams: 4, SlowStreams: 1,
		PayloadSize: 1000, Rate: 100, StallThreshold: 100 * time.Millisecond}
	sum := rec.Summarize(run, 10*time.Second, nil)

	text, js := rendered(t, sum)
	for _, want := range []string{
		"slow streams     2: 100.0 kB/s acked each, blocked 80% of their time (80% in stalls), 2 stall(s), longest 8s\n",
		"fast streams     6: 300.0 kB/s acked each, blocked 60% of their time (50% in stalls), 6 stall(s), longest 5s\n",
		"streams tied     the fast streams were held with the slow ones (blocked 60% of their time, 6 stall(s),\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text report lacks %q:\n%s", want, text)
		}
	}

	var got struct {
		StreamLayer struct {
			StreamGroups map[string]map[string]float64 `json:"stream_groups"`
			StreamsTied  map[string]any                `json:"streams_tied"`
		} `json:"stream_layer"`
	}
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	g := got.StreamLayer.StreamGroups
	for _, c := range []struct {
		group, key string
		want       float64
	}{
		{"slow", "streams", 2}, {"slow", "bytes_acked_per_second", 100e3}, {"slow", "blocked_share", 0.8}, {"slow", "stalled_share", 0.8}, {"slow", "stalls", 2},
		{"fast", "streams", 6}, {"fast", "bytes_acked_per_second", 300e3}, {"fast", "blocked_share", 0.6}, {"fast", "stalled_share", 0.5}, {"fast", "longest_stall_seconds", 5},
	} {
		if g[c.group][c.key] != c.want {
			t.Errorf("stream_groups.%s.%s = %v, want %v", c.group, c.key, g[c.group][c.key], c.want)
		}
	}
	if tied := got.StreamLayer.StreamsTied; tied["conclusion"] != "tied" || tied["sure"] != true {
		t.Errorf("streams_tied = %v, want tied and sure", tied)
	}

	// Without both groups (--slow-streams 0, or all slow) there is nothing
	// to compare.
	for _, k := range []int{0, -1, 4} {
		run.SlowStreams = k
		if l := rec.Summarize(run, 10*time.Second, nil).StreamLayer; l == nil || l.StreamGroups != nil || l.StreamsTied != nil {
			t.Errorf("--slow-streams %d: stream layer %+v, want one without groups", k, l)
		}
	}
}
