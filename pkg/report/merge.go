package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"

	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// FleetSummary is one report for a fleet of bp-clients: the same top-level
// fields as one instance's Summary, as the fleet's totals (see Merge for
// how each is made), plus the fleet verdict and the instances' own
// reports. Its JSON is what `bp-client merge --output json` prints.
type FleetSummary struct {
	Summary
	// FleetVerdict counts the instances' verdicts; Verdict (in Summary)
	// is the same as one verdict, for readers of single reports.
	FleetVerdict verdict.FleetVerdict `json:"fleet_verdict"`
	// Missing lists the instance indexes 0..instances-1 no report was
	// given for (the totals are then of fewer instances than the fleet).
	Missing []int `json:"missing_instances,omitempty"`
	// Instances are the instances' reports, in the order of their index.
	Instances []Summary `json:"instances"`
	// PeakInPipeSource says how Summary's peak_bytes_in_pipe was made:
	// PeakFromTimeline (the fleet's own peak) or PeakSumOfInstances (an
	// upper bound). PeakInPipeAtSeconds is when the fleet's timeline
	// peaked, when that point is the peak; PeakInPipeUpperBoundBytes the
	// instances' peaks added up, which need not coincide.
	PeakInPipeSource          string   `json:"peak_bytes_in_pipe_source"`
	PeakInPipeAtSeconds       *float64 `json:"peak_bytes_in_pipe_at_seconds,omitempty"`
	PeakInPipeUpperBoundBytes int64    `json:"peak_bytes_in_pipe_upper_bound"`
}

// Named is one instance's report and the file it came from, for errors.
type Named struct {
	File    string
	Summary Summary
}

// MergeError is a report merge refuses: which file, and why.
type MergeError struct {
	File   string
	Reason string
}

func (e *MergeError) Error() string { return e.File + ": " + e.Reason }

// ReadReports reads the reports in one file: every JSON object that starts
// at a line holding only "{" (as --output json prints it). Other lines are
// skipped, so that `kubectl logs` of several pods, logs and reports mixed,
// can be read as they come. A file without a report, or a report that does
// not decode, is an error naming the file and the line.
func ReadReports(file string, r io.Reader) ([]Named, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, &MergeError{File: file, Reason: err.Error()}
	}
	var out []Named
	line := 1
	for rest := data; len(rest) > 0; {
		cur, next, _ := bytes.Cut(rest, []byte("\n"))
		if string(bytes.TrimRight(cur, "\r")) != "{" {
			rest, line = next, line+1
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(rest))
		var s Summary
		if err := dec.Decode(&s); err != nil {
			return nil, &MergeError{File: file, Reason: fmt.Sprintf("line %d: damaged report: %v", line, err)}
		}
		if s.RunID == "" {
			return nil, &MergeError{File: file, Reason: fmt.Sprintf("line %d: not a bp-client report (no run_id)", line)}
		}
		out = append(out, Named{File: file, Summary: s})
		used := rest[:dec.InputOffset()]
		line += bytes.Count(used, []byte("\n"))
		rest = rest[len(used):]
	}
	if len(out) == 0 {
		return nil, &MergeError{File: file, Reason: "no bp-client JSON report in it (run the clients with --output json)"}
	}
	return out, nil
}

// ReadReportFile is ReadReports of a file on disk ("-": standard input).
func ReadReportFile(path string, stdin io.Reader) ([]Named, error) {
	if path == "-" {
		return ReadReports("standard input", bufio.NewReader(stdin))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		reason := err
		if pe, ok := err.(*fs.PathError); ok {
			reason = pe.Err
		}
		return nil, &MergeError{File: path, Reason: reason.Error()}
	}
	return ReadReports(path, bytes.NewReader(data))
}

// Merge makes one fleet report of the instances' reports. They must be of
// one fleet: the same fleet name and size, direction, each instance once
// (an error names the first file that differs). The totals:
//   - summed: connections, bytes, write calls, rates (each instance's is
//     its own, and they ran side by side), blocked seconds, stalls, failed
//     connections, reconnects, the kernel's seconds;
//   - the peak in the pipe: the most the summed timeline holds at one
//     point (at least the largest instance's peak), since the instances'
//     peaks need not coincide; without timelines their sum, an upper bound
//     (setPeakInPipe);
//   - shares (blocked, peer window zero, rwnd-limited) recomputed over the
//     connections' combined time, as an instance computes its own;
//   - the largest: duration, longest stall, write-blocked p99 (quantiles do
//     not add up: the fleet's p99 is at most the largest), peak send queue;
//     the median of the instances' write-blocked p50;
//   - completed when every instance completed; the first error, named by
//     its instance;
//   - the stream layer (stream_layer): times and counts summed, the lowest
//     windows the least, the stop layer judged on those figures as an
//     instance judges its own (mergeStreamLayer);
//   - the verdict: verdict.Fleet of the instances' verdicts.
func Merge(reports []Named) (FleetSummary, error) {
	if len(reports) == 0 {
		return FleetSummary{}, errors.New("no reports to merge")
	}
	if err := checkFleet(reports); err != nil {
		return FleetSummary{}, err
	}
	reports = slices.Clone(reports)
	slices.SortStableFunc(reports, func(a, b Named) int { return instanceOf(a) - instanceOf(b) })
	first := reports[0].Summary
	fs := FleetSummary{}
	t := &fs.Summary
	t.RunID, t.Target, t.Direction, t.PayloadSize = first.RunID, first.Target, first.Direction, first.PayloadSize
	t.StallThresholdSeconds, t.Completed = first.StallThresholdSeconds, true
	if first.Fleet != nil {
		t.Fleet = &Fleet{Name: first.Fleet.Name, Instance: -1, Instances: first.Fleet.Instances}
		if first.Fleet.Name != "" {
			t.RunID = first.Fleet.Name
		}
		fs.Missing = missing(reports, first.Fleet.Instances)
	}
	var connTime float64
	var p50s []float64
	var verdicts []*verdict.Verdict
	for _, n := range reports {
		s := n.Summary
		fs.Instances = append(fs.Instances, s)
		t.addTotals(s)
		connTime += s.DurationSeconds * float64(s.units().Runs)
		p50s = append(p50s, s.WriteBlockedP50)
		verdicts = append(verdicts, s.Verdict)
		if !s.Completed && t.Completed {
			t.Completed, t.Error = false, fmt.Sprintf("instance %d (%s): %s", instanceOf(n), n.File, s.Error)
		}
		if s.Target != t.Target {
			t.Target = "several targets"
		}
	}
	if t.Fleet != nil {
		t.Fleet.Connections = t.Connections
	}
	t.WriteBlockedP50 = medianOf(p50s)
	t.shares(connTime)
	t.Timeline = fleetTimeline(fs.Instances, t.Connections)
	t.StreamLayer = mergeStreamLayer(fs.Instances, t.Direction.ClientWrites())
	fs.setPeakInPipe()
	if t.Direction.ClientWrites() {
		fv, v := verdict.Fleet(verdicts)
		fs.FleetVerdict, t.Verdict = fv, &v
	}
	return fs, nil
}
