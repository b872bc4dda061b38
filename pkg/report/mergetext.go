package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

// WriteJSON prints the fleet report as one JSON object.
func (fs FleetSummary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(fs)
}

// WriteText prints the fleet report for people: the fleet's totals as one
// report, a line per instance, and the fleet verdict.
func (fs FleetSummary) WriteText(w io.Writer) error {
	var b strings.Builder
	name, size := "(unnamed)", len(fs.Instances)
	if f := fs.Fleet; f != nil {
		size = f.Instances
		if f.Name != "" {
			name = f.Name
		}
	}
	fmt.Fprintf(&b, "\nbp-client fleet report: fleet %s, reports of %d of %d instance(s), %d connection(s) in all\n", name, len(fs.Instances), size, fs.Connections)
	if len(fs.Missing) > 0 {
		fmt.Fprintf(&b, "  MISSING: no report of instance(s) %v: the totals are of the others only\n", fs.Missing)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	totals := fs.Summary
	totals.Fleet = nil // the header said it
	if err := totals.WriteText(w); err != nil {
		return err
	}
	b.Reset()
	b.WriteString(fs.peakInPipeLine())
	fmt.Fprintf(&b, "\ninstances:\n")
	for _, s := range fs.Instances {
		b.WriteString(instanceLine(s))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// instanceLine is one instance's line in the fleet report.
func instanceLine(s Summary) string {
	idx := "-"
	if s.Fleet != nil {
		idx = fmt.Sprint(s.Fleet.Instance)
	}
	status := "completed"
	if !s.Completed {
		status = "FAILED"
	}
	line := fmt.Sprintf("  %4s  run %-14s %s, %d conn, written %d, acked %d, blocked %.2f s, %d stalls",
		idx, s.RunID, status, s.Connections, s.BytesWritten, s.BytesAcked, s.BlockedSeconds, s.Stalls)
	if v := s.Verdict; v != nil {
		line += ", " + v.Outcome
		if v.BlockDelaySeconds != nil {
			line += fmt.Sprintf(" after %s", seconds(*v.BlockDelaySeconds))
		}
		if v.TotalAbsorbedBytes != nil {
			line += fmt.Sprintf(", absorbed %s", config.HumanBytes(float64(*v.TotalAbsorbedBytes)))
		}
	}
	if l := s.StreamLayer; l != nil {
		line += fmt.Sprintf(", %d stream(s) stopped at: %s", l.Streams, l.Stop)
	}
	return line + "\n"
}
