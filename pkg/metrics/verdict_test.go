package metrics_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/go-backpressure/go-backpressure/pkg/metrics"
)

// TestVerdictGauges: one outcome at 1 and the others at 0, the figures a
// verdict has exported and the others absent, the fleet's size and name.
func TestVerdictGauges(t *testing.T) {
	reg := metrics.NewRegistry()
	v := metrics.NewVerdict(reg, []string{"blocked", "absorbed", "not_stalled", "unknown"}, "f1", 3)
	absorbed, delay := int64(4096), 0.5
	tests := []struct {
		name string
		set  *metrics.VerdictFigures // nil: nothing set yet
		want string
	}{
		// Before any verdict: every outcome 0, no figure.
		{name: "none yet", want: `
bp_fleet_info{fleet="f1"} 1
bp_fleet_instances 3
bp_verdict_outcome{outcome="absorbed"} 0
bp_verdict_outcome{outcome="blocked"} 0
bp_verdict_outcome{outcome="not_stalled"} 0
bp_verdict_outcome{outcome="unknown"} 0
`},
		// A blocked verdict: its outcome and figures; no stop time given.
		{name: "blocked", set: &metrics.VerdictFigures{Outcome: "blocked", AbsorbedBytes: &absorbed, BlockDelay: &delay}, want: `
bp_fleet_info{fleet="f1"} 1
bp_fleet_instances 3
bp_verdict_absorbed_bytes 4096
bp_verdict_block_delay_seconds 0.5
bp_verdict_outcome{outcome="absorbed"} 0
bp_verdict_outcome{outcome="blocked"} 1
bp_verdict_outcome{outcome="not_stalled"} 0
bp_verdict_outcome{outcome="unknown"} 0
`},
		// The next round not stalled: the figures go away again.
		{name: "then not stalled", set: &metrics.VerdictFigures{Outcome: "not_stalled"}, want: `
bp_fleet_info{fleet="f1"} 1
bp_fleet_instances 3
bp_verdict_outcome{outcome="absorbed"} 0
bp_verdict_outcome{outcome="blocked"} 0
bp_verdict_outcome{outcome="not_stalled"} 1
bp_verdict_outcome{outcome="unknown"} 0
`},
	}
	names := []string{"bp_fleet_info", "bp_fleet_instances", "bp_verdict_outcome", "bp_verdict_absorbed_bytes",
		"bp_verdict_block_delay_seconds", "bp_verdict_server_stopped_at_seconds"}
	for _, tt := range tests {
		if tt.set != nil {
			v.Set(*tt.set)
		}
		var got strings.Builder
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if !slices.Contains(names, mf.GetName()) {
					continue
				}
				labels := ""
				for _, l := range m.GetLabel() {
					labels += l.GetName() + `="` + l.GetValue() + `"`
				}
				if labels != "" {
					labels = "{" + labels + "}"
				}
				got.WriteString(mf.GetName() + labels + " " + strconv.FormatFloat(m.GetGauge().GetValue(), 'g', -1, 64) + "\n")
			}
		}
		if strings.TrimSpace(got.String()) != strings.TrimSpace(tt.want) {
			t.Errorf("%s:\n%s\nwant:\n%s", tt.name, got.String(), tt.want)
		}
	}
}
