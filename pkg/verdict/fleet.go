package verdict

import (
	"fmt"
	"slices"
	"strings"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

// Outcomes is the verdict's fixed set of outcomes, in the order of how far
// the server's stop reached: what the metrics export one series each of.
var Outcomes = []string{OutcomeBlocked, OutcomeAbsorbed, OutcomeNotStalled, OutcomeUnknown}

// Spread is how a figure spread over a fleet's instances: the smallest,
// the median and the largest, over the instances that have it.
type Spread struct {
	Instances int     `json:"instances"`
	Min       float64 `json:"min"`
	Median    float64 `json:"median"`
	Max       float64 `json:"max"`
}

// FleetVerdict is one answer for a fleet of clients run together: how many
// instances the server's stop reached, how soon, and how much the path
// absorbed in all. It judges nothing anew; it counts the instances'
// verdicts.
type FleetVerdict struct {
	Instances int `json:"instances"`
	// Outcomes counts the instances per outcome (every outcome present).
	Outcomes map[string]int `json:"outcomes"`
	// BlockDelaySeconds and AbsorbedBytes spread over the instances that
	// have them (nil: none has).
	BlockDelaySeconds *Spread `json:"block_delay_seconds,omitempty"`
	AbsorbedBytes     *Spread `json:"absorbed_bytes,omitempty"`
	// TotalAbsorbedBytes is the instances' total_absorbed_bytes summed:
	// what the path held for the whole fleet.
	TotalAbsorbedBytes int64 `json:"total_absorbed_bytes"`
}

// Fleet counts the instances' verdicts (nil for an instance that wrote
// nothing) into the fleet's, and sums them into one Verdict with the same
// fields as an instance's: the outcome reached furthest by any instance
// (blocked when one blocked), counts summed, and figures the medians over
// the instances that have them.
func Fleet(vs []*Verdict) (FleetVerdict, Verdict) {
	fv := FleetVerdict{Instances: len(vs), Outcomes: map[string]int{}}
	for _, o := range Outcomes {
		fv.Outcomes[o] = 0
	}
	v := Verdict{Outcome: OutcomeUnknown, Confidence: High, Reasons: []string{}}
	var delays, absorbed []float64
	for _, iv := range vs {
		if iv == nil {
			fv.Outcomes[OutcomeUnknown]++
			continue
		}
		fv.Outcomes[iv.Outcome]++
		if slices.Index(Outcomes, iv.Outcome) < slices.Index(Outcomes, v.Outcome) {
			v.Outcome = iv.Outcome
		}
		v.Confidence = lower(v.Confidence, iv.Confidence)
		v.Connections += iv.Connections
		v.StalledConnections += iv.StalledConnections
		v.BlockedConnections += iv.BlockedConnections
		v.Stalls += iv.Stalls
		v.WaitedFlowingSeconds += iv.WaitedFlowingSeconds
		v.WaitedStalledSeconds += iv.WaitedStalledSeconds
		if iv.BlockDelaySeconds != nil {
			delays = append(delays, *iv.BlockDelaySeconds)
		}
		if iv.AbsorbedBytes != nil {
			absorbed = append(absorbed, float64(*iv.AbsorbedBytes))
		}
		if iv.TotalAbsorbedBytes != nil {
			fv.TotalAbsorbedBytes += *iv.TotalAbsorbedBytes
		}
	}
	fv.BlockDelaySeconds, fv.AbsorbedBytes = spreadOf(delays), spreadOf(absorbed)
	if fv.BlockDelaySeconds != nil {
		d := fv.BlockDelaySeconds.Median
		v.BlockDelaySeconds = &d
	}
	if fv.AbsorbedBytes != nil {
		a := int64(fv.AbsorbedBytes.Median)
		v.AbsorbedBytes, v.TotalAbsorbedBytes = &a, &fv.TotalAbsorbedBytes
	}
	fleetPath(&v, vs)
	v.Summary = fv.Words()
	return fv, v
}

// Words is the fleet verdict in plain words.
func (fv FleetVerdict) Words() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d instances blocked", fv.Outcomes[OutcomeBlocked], fv.Instances)
	for _, o := range Outcomes[1:] {
		if n := fv.Outcomes[o]; n > 0 {
			fmt.Fprintf(&b, ", %d %s", n, strings.ReplaceAll(o, "_", " "))
		}
	}
	if s := fv.BlockDelaySeconds; s != nil {
		fmt.Fprintf(&b, "; block delay %.3f s to %.3f s (median %.3f s)", s.Min, s.Max, s.Median)
	}
	if s := fv.AbsorbedBytes; s != nil {
		fmt.Fprintf(&b, "; absorbed per connection %s to %s (median %s)", config.HumanBytes(s.Min), config.HumanBytes(s.Max), config.HumanBytes(s.Median))
		fmt.Fprintf(&b, "; %s absorbed in all (%d bytes)", config.HumanBytes(float64(fv.TotalAbsorbedBytes)), fv.TotalAbsorbedBytes)
	}
	return b.String()
}

// spreadOf xs, nil for none.
func spreadOf(xs []float64) *Spread {
	if len(xs) == 0 {
		return nil
	}
	// The median as the instances' verdicts take theirs over connections.
	return &Spread{Instances: len(xs), Min: slices.Min(xs), Median: median(xs), Max: slices.Max(xs)}
}

// lower is the less sure of two confidence levels.
func lower(a, b string) string {
	rank := map[string]int{High: 2, Medium: 1, Low: 0}
	if rank[b] < rank[a] {
		return b
	}
	return a
}
