package verdict

import (
	"strings"
	"testing"
)

// TestFleet: the fleet verdict counts the instances' outcomes, spreads
// their figures and sums what they absorbed.
func TestFleet(t *testing.T) {
	blocked := func(delay float64, absorbed int64) *Verdict {
		return &Verdict{Outcome: OutcomeBlocked, Confidence: High, Connections: 2, BlockedConnections: 2, StalledConnections: 2,
			BlockDelaySeconds: &delay, AbsorbedBytes: &absorbed, TotalAbsorbedBytes: ptr(2 * absorbed)}
	}
	tests := []struct {
		name     string
		in       []*Verdict
		outcome  string
		blocked  int
		total    int64
		delayMax float64 // 0: no block delay spread
		words    string
	}{
		// Every instance blocked: blocked, delays spread, absorbed summed.
		{name: "all blocked", in: []*Verdict{blocked(0.1, 100), blocked(0.3, 300), blocked(0.2, 200)},
			outcome: OutcomeBlocked, blocked: 3, total: 1200, delayMax: 0.3, words: "3 of 3 instances blocked"},
		// One blocked, one absorbed: the stop reached the fleet.
		{name: "one blocked", in: []*Verdict{blocked(0.1, 100), {Outcome: OutcomeAbsorbed, Confidence: Medium}},
			outcome: OutcomeBlocked, blocked: 1, total: 200, delayMax: 0.1, words: "1 of 2 instances blocked, 1 absorbed"},
		// None stalled; a reader's report (nil) counts as unknown.
		{name: "not stalled", in: []*Verdict{{Outcome: OutcomeNotStalled, Confidence: High}, nil},
			outcome: OutcomeNotStalled, words: "0 of 2 instances blocked, 1 not stalled, 1 unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv, v := Fleet(tt.in)
			if v.Outcome != tt.outcome || fv.Outcomes[OutcomeBlocked] != tt.blocked || fv.TotalAbsorbedBytes != tt.total {
				t.Fatalf("outcome %s, blocked %d, total %d; want %s, %d, %d", v.Outcome, fv.Outcomes[OutcomeBlocked], fv.TotalAbsorbedBytes, tt.outcome, tt.blocked, tt.total)
			}
			if got := fv.BlockDelaySeconds; (got == nil) != (tt.delayMax == 0) || (got != nil && got.Max != tt.delayMax) {
				t.Fatalf("block delay spread %+v, want max %v", got, tt.delayMax)
			}
			if !strings.HasPrefix(v.Summary, tt.words) {
				t.Fatalf("summary %q, want it to start %q", v.Summary, tt.words)
			}
			if len(fv.Outcomes) != len(Outcomes) {
				t.Fatalf("outcomes %v: want every outcome counted", fv.Outcomes)
			}
		})
	}
}
