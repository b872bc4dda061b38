package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// SetVerdict has the report include the verdict the observer judges (it
// must be one of the run's observers); nil leaves the verdict out.
func (r *Recorder) SetVerdict(v *verdict.Observer) { r.verdict = v }

// liveVerdict is the verdict's live words and its count of stalled
// connections: "" and -1 without a verdict.
func (r *Recorder) liveVerdict() (string, int) {
	if r.verdict == nil {
		return "", -1
	}
	return r.verdict.LiveStalled(time.Now())
}

// verdictNow judges the run as it stands (at its end, for the summary).
func (r *Recorder) verdictNow() *verdict.Verdict {
	if r.verdict == nil {
		return nil
	}
	v := r.verdict.Verdict(time.Now())
	return &v
}

// verdictWidth is where the text report wraps the verdict's words.
const verdictWidth = 90

// writeVerdictText prints the verdict rows of the text report: the summary
// in plain words, how sure, and why.
func (s Summary) writeVerdictText(row func(k, format string, a ...any)) {
	v := s.Verdict
	if v == nil {
		return
	}
	for i, line := range wrap(v.Summary+".", verdictWidth) {
		k := ""
		if i == 0 {
			k = "verdict"
		}
		row(k, "%s", line)
	}
	row("confidence", "%s", v.Confidence)
	for _, r := range v.Reasons {
		for i, line := range wrap(r, verdictWidth-2) {
			if i == 0 {
				row("", "- %s", line)
			} else {
				row("", "  %s", line)
			}
		}
	}
}

// wrap breaks text into lines of at most width characters, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	var b strings.Builder
	for _, w := range strings.Fields(text) {
		if b.Len() > 0 && b.Len()+1+len(w) > width {
			lines = append(lines, b.String())
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	if b.Len() > 0 {
		lines = append(lines, b.String())
	}
	return lines
}

// writeBlockedText prints the blocked row: the time in write calls (summed
// over the connections, and said so), and what it waited for: a path that
// kept flowing (the writer is faster than the path: throughput, not
// backpressure from a stop), or a stopped server (a stall, no progress).
func (s Summary) writeBlockedText(row func(k, format string, a ...any)) {
	u := s.units()
	text := fmt.Sprintf("%.2f s in write calls, %.0f%% of the run", s.BlockedSeconds, 100*s.BlockedShare)
	if u.Runs > 1 {
		text = fmt.Sprintf("in all %.2f s in write calls %s, %.2f s %s, %.0f%% of the run each",
			s.BlockedSeconds, u.Over(), s.BlockedSeconds/float64(u.Runs), u.Per(), 100*s.BlockedShare)
	}
	if v := s.Verdict; v != nil && s.BlockedSeconds >= 0.01 {
		stalled := min(v.WaitedStalledSeconds, s.BlockedSeconds)
		text += fmt.Sprintf(": %.2f s waiting on a flowing path (throughput), %.2f s stalled (no progress)", s.BlockedSeconds-stalled, stalled)
	}
	row("blocked", "%s", text)
}
