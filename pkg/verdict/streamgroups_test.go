package verdict_test

import (
	"strings"
	"testing"

	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// TestStreamsTiedOf: the decision and its words, with the figures of the
// e2e runs (direct: fast streams blocked 2%; through HAProxy: 48%) and
// around the quarter threshold.
func TestStreamsTiedOf(t *testing.T) {
	slowHeld := verdict.StreamGroup{Streams: 1, BytesAckedPerSecond: 800e3, BlockedShare: 0.48, Stalls: 1, LongestStallSeconds: 1.65}
	fast := func(share float64, stalls int64, rate float64) verdict.StreamGroup {
		return verdict.StreamGroup{Streams: 3, BytesAckedPerSecond: rate, BlockedShare: share, Stalls: stalls}
	}
	for _, c := range []struct {
		name       string
		g          verdict.StreamGroups
		paced      bool
		conclusion string
		sure       bool
		words      []string
	}{
		{"direct", verdict.StreamGroups{Slow: slowHeld, Fast: fast(0.02, 0, 2.3e6)}, true, verdict.StreamsApart, true, []string{
			"the fast streams went on while the slow ones were held (fast blocked 2% of their time, 0 stall(s), 2.3 MB/s each against the slow ones' 800.0 kB/s): the path keeps streams apart (stream-level backpressure)",
		}},
		{"haproxy", verdict.StreamGroups{Slow: slowHeld, Fast: fast(0.48, 3, 797e3)}, true, verdict.StreamsTiedOn, true, []string{
			"the fast streams were held with the slow ones (blocked 48% of their time, 3 stall(s), 797.0 kB/s each against the slow ones' 800.0 kB/s): something on the path ties the streams together (head-of-line blocking), e.g. a proxy that stops reading the connection when one stream's buffer is full",
		}},
		{"just above", verdict.StreamGroups{Slow: slowHeld, Fast: fast(0.30, 0, 1e6)}, true, verdict.StreamsTiedOn, false, []string{
			"(unsure: the fast streams' blocked share is near the 25% threshold)",
		}},
		{"just below", verdict.StreamGroups{Slow: slowHeld, Fast: fast(0.20, 0, 1e6)}, true, verdict.StreamsApart, false, []string{"unsure"}},
		{"unpaced apart", verdict.StreamGroups{Slow: slowHeld, Fast: fast(0.9, 1, 100e6)}, false, verdict.StreamsApart, false, []string{
			"unsure: the writers had no --rate",
		}},
		{"unpaced tied", verdict.StreamGroups{Slow: slowHeld, Fast: fast(0.95, 3, 1.5e6)}, false, verdict.StreamsTiedOn, false, []string{"head-of-line blocking"}},
		{"slow not held", verdict.StreamGroups{Slow: verdict.StreamGroup{Streams: 1, BlockedShare: 0.1}, Fast: fast(0.5, 3, 1e6)}, true, verdict.StreamsNotShown, true, []string{
			"the slow streams were not held (blocked 10% of their time, no stall): this run does not show whether the path ties streams together",
		}},
	} {
		got := verdict.StreamsTiedOf(c.g, c.paced)
		if got.Conclusion != c.conclusion || got.Sure != c.sure || got.ThresholdBlockedShare != 0.25 {
			t.Errorf("%s: conclusion %s, sure %v, threshold %v; want %s, %v, 0.25", c.name, got.Conclusion, got.Sure, got.ThresholdBlockedShare, c.conclusion, c.sure)
		}
		for _, w := range c.words {
			if !strings.Contains(got.Summary, w) {
				t.Errorf("%s: summary %q lacks %q", c.name, got.Summary, w)
			}
		}
	}
}
