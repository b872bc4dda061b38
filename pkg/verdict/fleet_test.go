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

// TestFleetPath: the fleet's verdict names the clients' peer from what
// the instances agree on (the echoed path, the addresses), and says so in
// a reason; where they disagree it knows nothing, says how many differ,
// and is a step less sure. A merged report once named "the next hop; the
// server did not say which" for a fleet that ran straight to bp-server,
// though every instance had named the server.
func TestFleetPath(t *testing.T) {
	inst := func(via []string, rewritten *bool, seen, local string) *Verdict {
		v := &Verdict{Outcome: OutcomeBlocked, Confidence: High, Connections: 3, SeenFrom: seen, LocalAddr: local, AddressRewritten: rewritten}
		if via != nil {
			v.Via = &via
		}
		return v
	}
	no, yes := ptr(false), ptr(true)
	tests := []struct {
		name, peer, reason, confidence string
	}{
		{"direct", "the peer (the server: it sees every connection from its client's own address, the first instance's first one's 127.0.0.2:40000)",
			"every instance's server sees every connection from its client's own address", High},
		{"proxy", "the peer (a hop that did not name itself: the server sees the first instance's first connection from 127.0.0.1:5000, that client is 127.0.0.2:40000)",
			"every instance's server sees its connections from another address", High},
		{"relay", "the peer (bp-relay r1, the first hop)", "client -> r1 -> server; the window the clients see is their peer's, r1's", High},
		{"addresses disagree", "the peer (the server: no bp-relay named itself)", "instances disagree: on 1 of the 2", Medium},
		{"paths disagree", "the peer (the next hop; the server did not say which)", "not every instance's server echoed the path", High},
		{"one wrote nothing", "the peer (the next hop; the server did not say which)", "not every instance's server echoed the path", High},
	}
	in := map[string][]*Verdict{
		"direct": {inst([]string{}, no, "127.0.0.2:40000", "127.0.0.2:40000"), inst([]string{}, no, "127.0.0.3:40001", "127.0.0.3:40001")},
		"proxy":  {inst([]string{}, yes, "127.0.0.1:5000", "127.0.0.2:40000"), inst([]string{}, yes, "127.0.0.1:5001", "127.0.0.3:40001")},
		"relay":  {inst([]string{"r1"}, yes, "127.0.0.1:5000", "127.0.0.2:40000"), inst([]string{"r1"}, yes, "127.0.0.1:5001", "127.0.0.3:40001")},
		"addresses disagree": {inst([]string{}, no, "127.0.0.2:40000", "127.0.0.2:40000"),
			inst([]string{}, yes, "127.0.0.1:5001", "127.0.0.3:40001")},
		"paths disagree":    {inst([]string{"r1"}, nil, "", ""), inst([]string{}, nil, "", "")},
		"one wrote nothing": {inst([]string{}, no, "127.0.0.2:40000", "127.0.0.2:40000"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, v := Fleet(in[tt.name])
			if got := v.PeerWords(); got != tt.peer {
				t.Errorf("peer %q\nwant %q", got, tt.peer)
			}
			if len(v.Reasons) != 1 || !strings.Contains(v.Reasons[0], tt.reason) {
				t.Errorf("reasons %q, want one with %q", v.Reasons, tt.reason)
			}
			if v.Confidence != tt.confidence {
				t.Errorf("confidence %s, want %s", v.Confidence, tt.confidence)
			}
		})
	}
}
