package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// instanceReport is instance i's report of fleet name, of n instances.
func instanceReport(name string, i, n int, written int64, outcome string) Summary {
	absorbed := written / 4
	return Summary{
		RunID: "run" + string(rune('a'+i)), Target: "tcp://x:1", Direction: flow.Up, Connections: 2, Completed: true,
		DurationSeconds: 2, BytesWritten: written, BytesAcked: written, WriteCalls: 10, BlockedSeconds: 1, Stalls: 1,
		Fleet:   &Fleet{Name: name, Instance: i, Instances: n, Connections: 2 * n},
		Verdict: &verdict.Verdict{Outcome: outcome, Confidence: verdict.High, AbsorbedBytes: &absorbed, TotalAbsorbedBytes: &absorbed},
	}
}

// jsonOf is a report as --output json prints it, with log lines around.
func jsonOf(t *testing.T, ss ...Summary) string {
	var b bytes.Buffer
	for _, s := range ss {
		b.WriteString("time=2026-12-01T22:00:00Z level=INFO msg=\"bp-client starting\"\n")
		if err := s.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestMerge: totals are the instances' sums, the fleet verdict counts
// their outcomes, and reports come from files with logs among them.
func TestMerge(t *testing.T) {
	a, b := instanceReport("f", 0, 2, 1000, verdict.OutcomeBlocked), instanceReport("f", 1, 2, 3000, verdict.OutcomeAbsorbed)
	// Both in one file, as kubectl logs of the Job's pods gives them.
	got, err := ReadReports("logs.txt", strings.NewReader(jsonOf(t, b, a)))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := Merge(got)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case fs.BytesWritten != 4000 || fs.BytesAcked != 4000 || fs.Connections != 4 || fs.Stalls != 2:
		t.Errorf("totals: %+v", fs.Summary)
	case fs.BlockedShare != 0.25: // 2 s blocked over 4 connections of 2 s
		t.Errorf("blocked share %v, want 0.25", fs.BlockedShare)
	case fs.Verdict.Outcome != verdict.OutcomeBlocked || fs.FleetVerdict.Outcomes[verdict.OutcomeBlocked] != 1:
		t.Errorf("verdict %+v", fs.FleetVerdict)
	case fs.FleetVerdict.TotalAbsorbedBytes != 1000:
		t.Errorf("total absorbed %d, want 1000", fs.FleetVerdict.TotalAbsorbedBytes)
	case len(fs.Instances) != 2 || fs.Instances[0].Fleet.Instance != 0:
		t.Errorf("instances not in index order: %+v", fs.Instances)
	case fs.RunID != "f" || fs.Fleet.Instances != 2 || len(fs.Missing) != 0:
		t.Errorf("fleet: run %s, %+v, missing %v", fs.RunID, fs.Fleet, fs.Missing)
	}
	// The merged JSON has the instance report's top-level fields.
	var one, merged map[string]any
	var buf bytes.Buffer
	fs.WriteJSON(&buf)
	json.Unmarshal(buf.Bytes(), &merged)
	raw, _ := json.Marshal(a)
	json.Unmarshal(raw, &one)
	for k := range one {
		if _, ok := merged[k]; !ok {
			t.Errorf("merged JSON lacks the instance report's %q", k)
		}
	}
	var text bytes.Buffer
	if err := fs.WriteText(&text); err != nil || !strings.Contains(text.String(), "1 of 2 instances blocked") {
		t.Errorf("text report: %v\n%s", err, text.String())
	}
}

// TestMergeRefuses: reports that are not of one fleet, or not reports,
// are refused naming the file.
func TestMergeRefuses(t *testing.T) {
	f0 := instanceReport("f", 0, 2, 1000, verdict.OutcomeBlocked)
	tests := []struct {
		name  string
		files map[string]string // in order of the keys' names: a.json, b.json
		want  string            // in the error
	}{
		// Another fleet's report.
		{name: "other fleet", files: map[string]string{"a.json": jsonOf(t, f0), "b.json": jsonOf(t, instanceReport("g", 1, 2, 1, ""))}, want: `b.json: a report of fleet "g"`},
		// Another fleet size.
		{name: "other size", files: map[string]string{"a.json": jsonOf(t, f0), "b.json": jsonOf(t, instanceReport("f", 1, 3, 1, ""))}, want: "b.json: a fleet of 3 instances"},
		// An instance twice.
		{name: "twice", files: map[string]string{"a.json": jsonOf(t, f0), "b.json": jsonOf(t, f0)}, want: "b.json: instance 0's report is given twice"},
		// A damaged report.
		{name: "damaged", files: map[string]string{"a.json": jsonOf(t, f0), "b.json": "{\n  \"run_id\": \"x\",\n  \"bytes_written\": 12"}, want: "b.json: line 1: damaged report"},
		// A file with no report at all.
		{name: "no report", files: map[string]string{"a.json": jsonOf(t, f0), "b.json": "level=INFO msg=hello\n"}, want: "b.json: no bp-client JSON report"},
		// A JSON object that is not a report.
		{name: "not a report", files: map[string]string{"a.json": jsonOf(t, f0), "b.json": "{\n\"x\": 1}\n"}, want: "b.json: line 1: not a bp-client report"},
		// A lone client's report among a fleet's.
		{name: "lone client", files: map[string]string{"a.json": jsonOf(t, f0), "b.json": jsonOf(t, Summary{RunID: "solo", Direction: flow.Up})}, want: "b.json: a lone client's report"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var all []Named
			var err error
			for _, name := range []string{"a.json", "b.json"} {
				var got []Named
				if got, err = ReadReports(name, strings.NewReader(tt.files[name])); err != nil {
					break
				}
				all = append(all, got...)
			}
			if err == nil {
				_, err = Merge(all)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestMergeTimeline: the fleet's timeline is the instances' summed on one
// grid, and ends on the fleet's totals to the byte; its page is written.
func TestMergeTimeline(t *testing.T) {
	tl := func(written ...int64) *Timeline {
		out := &Timeline{IntervalSeconds: 0.1}
		for i, w := range written {
			out.Points = append(out.Points, TimelinePoint{Seconds: 0.1 * float64(i+1), BytesWritten: w, BytesAcked: w,
				PeerWindowZeroConnections: -1, StalledConnections: -1})
		}
		return out
	}
	a, b := instanceReport("f", 0, 2, 300, verdict.OutcomeBlocked), instanceReport("f", 1, 2, 700, verdict.OutcomeBlocked)
	a.Timeline, b.Timeline = tl(100, 200, 300), tl(300, 700)
	fs, err := Merge([]Named{{File: "a", Summary: a}, {File: "b", Summary: b}})
	if err != nil {
		t.Fatal(err)
	}
	pts := fs.Timeline.Points
	// At 0.1 s: 100 + 300; at 0.2 s: 200 + 700; the end (0.3 s): 300 + 700.
	if len(pts) != 3 || pts[0].BytesWritten != 400 || pts[1].BytesWritten != 900 || pts[2].BytesWritten != fs.BytesWritten {
		t.Errorf("fleet timeline %+v, fleet written %d", pts, fs.BytesWritten)
	}
	var page bytes.Buffer
	if err := fs.WriteHTML(&page); err != nil || !strings.Contains(page.String(), "2 of 2 instances blocked") {
		t.Errorf("fleet page: %v (%d bytes)", err, page.Len())
	}
}
