package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// TestMergePeakInPipe: the fleet's peak in the pipe is the most its summed
// timeline holds at one point, not the instances' peaks added up (they fall
// at other moments); without timelines the sum stays and is said to be an
// upper bound, in the JSON and the text.
func TestMergePeakInPipe(t *testing.T) {
	// inPipe is a timeline at 0.1 s with these bytes in the pipe.
	inPipe := func(b ...int64) *Timeline {
		out := &Timeline{IntervalSeconds: 0.1}
		for i, v := range b {
			out.Points = append(out.Points, TimelinePoint{Seconds: 0.1 * float64(i+1), BytesInPipe: v,
				PeerWindowZeroConnections: -1, StalledConnections: -1})
		}
		return out
	}
	// pair is instance a peaking at 500 bytes at 0.1 s, b at 600 at 0.3 s.
	pair := func() (Summary, Summary) {
		a, b := instanceReport("f", 0, 2, 1000, verdict.OutcomeBlocked), instanceReport("f", 1, 2, 1000, verdict.OutcomeBlocked)
		a.PeakBytesInPipe, b.PeakBytesInPipe = 500, 600
		a.Timeline, b.Timeline = inPipe(500, 400, 0), inPipe(0, 300, 600)
		return a, b
	}
	tests := []struct {
		name   string
		change func(a, b *Summary)
		peak   int64    // the fleet's peak_bytes_in_pipe
		at     *float64 // when the timeline peaked (nil: not at a point)
		source string
		text   string // in the text report
	}{
		// Together they held the most at 0.2 s: 400 + 300, more than
		// either's peak and less than the 1100 their peaks add up to.
		{name: "timeline", change: func(a, b *Summary) {}, peak: 700, at: ptr(0.2), source: PeakFromTimeline,
			text: "fleet peak       700 B at 200ms into the run: the most the instances held at one moment of their summed timeline (sampled every 100ms); their own peaks add up to 1.1 kB"},
		// a peaked at 900 between two of its points: the fleet held at
		// least that much then.
		{name: "between points", change: func(a, b *Summary) { a.PeakBytesInPipe = 900 }, peak: 900, source: PeakFromTimeline,
			text: "fleet peak       900 B at an instance's own peak, between two points of the timeline"},
		// a's point at 0.2 s says 900, acks' age beyond its own peak of
		// 500: its share there is 500, the fleet's 500 + 300.
		{name: "ack age", change: func(a, b *Summary) { a.Timeline = inPipe(500, 900, 0) }, peak: 800, at: ptr(0.2), source: PeakFromTimeline,
			text: "fleet peak       800 B at 200ms into the run"},
		// b kept no timeline: the sum, an upper bound.
		{name: "no timeline", change: func(a, b *Summary) { b.Timeline = nil }, peak: 1100, source: PeakSumOfInstances,
			text: "fleet peak       1.1 kB is the instances' peaks added up, an UPPER BOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := pair()
			tt.change(&a, &b)
			fs, err := Merge([]Named{{File: "a", Summary: a}, {File: "b", Summary: b}})
			if err != nil {
				t.Fatal(err)
			}
			if fs.PeakBytesInPipe != tt.peak || fs.PeakInPipeSource != tt.source || fs.PeakInPipeUpperBoundBytes != a.PeakBytesInPipe+b.PeakBytesInPipe {
				t.Errorf("peak %d (%s), bound %d; want %d (%s), bound %d", fs.PeakBytesInPipe, fs.PeakInPipeSource,
					fs.PeakInPipeUpperBoundBytes, tt.peak, tt.source, a.PeakBytesInPipe+b.PeakBytesInPipe)
			}
			if (fs.PeakInPipeAtSeconds == nil) != (tt.at == nil) || (tt.at != nil && *fs.PeakInPipeAtSeconds != *tt.at) {
				t.Errorf("peak at %v, want %v", fs.PeakInPipeAtSeconds, tt.at)
			}
			var buf bytes.Buffer
			if err := fs.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			var j map[string]any
			if err := json.Unmarshal(buf.Bytes(), &j); err != nil || j["peak_bytes_in_pipe"] != float64(tt.peak) ||
				j["peak_bytes_in_pipe_source"] != tt.source || j["peak_bytes_in_pipe_upper_bound"] != float64(a.PeakBytesInPipe+b.PeakBytesInPipe) {
				t.Errorf("JSON (%v): peak %v, source %v, bound %v", err, j["peak_bytes_in_pipe"], j["peak_bytes_in_pipe_source"], j["peak_bytes_in_pipe_upper_bound"])
			}
			var text bytes.Buffer
			if err := fs.WriteText(&text); err != nil || !strings.Contains(text.String(), tt.text) {
				t.Errorf("text (%v) lacks %q:\n%s", err, tt.text, text.String())
			}
		})
	}
}
