package report

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// streamTally is the figures of every stream at one index on its
// connection (stream k of each connection, and of each reconnect): with
// --slow-streams K the indexes below K are the slow group, the others
// the fast one.
type streamTally struct {
	streams                   atomic.Int64 // streams opened at the index
	acked, blockedNs, stalls  atomic.Int64
	stalledNs, longestStallNs atomic.Int64
}

// tallyOf is the tally of index k, made on first use. Call with r.mu held.
func (r *Recorder) tallyOf(k int) *streamTally {
	if r.byStream == nil {
		r.byStream = map[int]*streamTally{}
	}
	t := r.byStream[k]
	if t == nil {
		t = &streamTally{}
		r.byStream[k] = t
	}
	t.streams.Add(1)
	return t
}

// wrote counts a write of a stream; t may be nil (not a stream).
func (t *streamTally) wrote(blocked time.Duration, stalled bool) {
	if t == nil {
		return
	}
	t.blockedNs.Add(int64(blocked))
	if stalled {
		t.stalls.Add(1)
		t.stalledNs.Add(int64(blocked))
		raiseMax(&t.longestStallNs, int64(blocked))
	}
}

// ack counts bytes the server read on a stream; t may be nil.
func (t *streamTally) ack(d int64) {
	if t != nil {
		t.acked.Add(d)
	}
}

// streamGroupsNow sums the tallies into the slow group (indexes below
// run.SlowStreams) and the fast one, per stream over secs; nil unless
// the run had both (0 < K < --streams) and wrote.
func (r *Recorder) streamGroupsNow(run Run, secs float64) *verdict.StreamGroups {
	k := run.SlowStreams
	if k <= 0 || k >= run.Streams || secs <= 0 || !run.Direction.ClientWrites() {
		return nil
	}
	var slow, fast groupSum
	r.mu.Lock()
	for i, t := range r.byStream {
		g := &fast
		if i < k {
			g = &slow
		}
		g.add(t)
	}
	r.mu.Unlock()
	// Streams per group: every connection's, as planned (a stream that
	// never opened was held all the run too).
	conns := max(run.Connections, 1)
	return &verdict.StreamGroups{Slow: slow.group(conns*k, secs), Fast: fast.group(conns*(run.Streams-k), secs)}
}

// groupSum is a group's tallies summed.
type groupSum struct {
	acked, blockedNs, stalledNs, stalls, longestNs int64
}

func (g *groupSum) add(t *streamTally) {
	g.acked += t.acked.Load()
	g.blockedNs += t.blockedNs.Load()
	g.stalledNs += t.stalledNs.Load()
	g.stalls += t.stalls.Load()
	g.longestNs = max(g.longestNs, t.longestStallNs.Load())
}

// group is the sum per stream: n streams over secs.
func (g groupSum) group(n int, secs float64) verdict.StreamGroup {
	per := secs * float64(n)
	return verdict.StreamGroup{
		Streams: n, BytesAckedPerSecond: float64(g.acked) / per,
		BlockedShare: min(time.Duration(g.blockedNs).Seconds()/per, 1),
		StalledShare: min(time.Duration(g.stalledNs).Seconds()/per, 1),
		Stalls:       g.stalls, LongestStallSeconds: time.Duration(g.longestNs).Seconds(),
	}
}

// writeStreamGroupsText prints the "slow and fast streams" rows of the
// stream-layer section.
func writeStreamGroupsText(l *verdict.StreamLayer, row func(k, format string, a ...any)) {
	if l.StreamGroups == nil {
		return
	}
	for _, g := range []struct {
		name string
		g    verdict.StreamGroup
	}{{"slow streams", l.StreamGroups.Slow}, {"fast streams", l.StreamGroups.Fast}} {
		row(g.name, "%d: %s/s acked each, blocked %.0f%% of their time (%.0f%% in stalls), %d stall(s), longest %s",
			g.g.Streams, config.HumanBytes(g.g.BytesAckedPerSecond), g.g.BlockedShare*100, g.g.StalledShare*100, g.g.Stalls, seconds(g.g.LongestStallSeconds))
	}
	if l.StreamsTied == nil {
		return
	}
	for i, line := range wrap(l.StreamsTied.Summary+".", verdictWidth) {
		k := ""
		if i == 0 {
			k = "streams " + strings.ReplaceAll(l.StreamsTied.Conclusion, "_", " ") // "streams tied", "streams not shown"
		}
		row(k, "%s", line)
	}
}
