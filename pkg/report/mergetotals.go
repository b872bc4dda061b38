package report

import (
	"fmt"
	"slices"
)

// checkFleet refuses reports that are not of one fleet run: another fleet's
// name or size, another direction, an instance given twice, or a lone
// client's report among a fleet's. The error names the file.
func checkFleet(reports []Named) error {
	first := reports[0].Summary
	seen := map[int]string{}
	for _, n := range reports {
		s := n.Summary
		switch {
		case (s.Fleet == nil) != (first.Fleet == nil):
			return &MergeError{File: n.File, Reason: fmt.Sprintf("%s, unlike %s: not of one fleet", fleetWords(s.Fleet), reports[0].File)}
		case s.Fleet != nil && s.Fleet.Name != first.Fleet.Name:
			return &MergeError{File: n.File, Reason: fmt.Sprintf("a report of fleet %q, not %q (as %s)", s.Fleet.Name, first.Fleet.Name, reports[0].File)}
		case s.Fleet != nil && s.Fleet.Instances != first.Fleet.Instances:
			return &MergeError{File: n.File, Reason: fmt.Sprintf("a fleet of %d instances, not %d (as %s)", s.Fleet.Instances, first.Fleet.Instances, reports[0].File)}
		case s.Direction != first.Direction:
			return &MergeError{File: n.File, Reason: fmt.Sprintf("direction %s, not %s (as %s)", s.Direction, first.Direction, reports[0].File)}
		}
		if s.Fleet == nil {
			continue
		}
		if other, dup := seen[s.Fleet.Instance]; dup {
			return &MergeError{File: n.File, Reason: fmt.Sprintf("instance %d's report is given twice (also in %s)", s.Fleet.Instance, other)}
		}
		seen[s.Fleet.Instance] = n.File
	}
	return nil
}

// fleetWords says which fleet a report is of.
func fleetWords(f *Fleet) string {
	if f == nil {
		return "a lone client's report (no fleet)"
	}
	return fmt.Sprintf("a report of fleet %q", f.Name)
}

// instanceOf is a report's instance index (-1: not in a fleet).
func instanceOf(n Named) int {
	if n.Summary.Fleet == nil {
		return -1
	}
	return n.Summary.Fleet.Instance
}

// missing lists the indexes 0..instances-1 no report has.
func missing(reports []Named, instances int) []int {
	have := map[int]bool{}
	for _, n := range reports {
		have[instanceOf(n)] = true
	}
	var out []int
	for i := range instances {
		if !have[i] {
			out = append(out, i)
		}
	}
	return out
}

// addTotals adds one instance's report to the fleet's totals (see Merge).
func (t *Summary) addTotals(s Summary) {
	t.Connections += s.Connections
	t.Streams += s.Streams
	t.FailedConns += s.FailedConns
	t.NotConnected += s.NotConnected
	t.Reconnects += s.Reconnects
	t.DurationSeconds = max(t.DurationSeconds, s.DurationSeconds)
	t.BytesWritten += s.BytesWritten
	t.BytesAcked += s.BytesAcked
	t.BytesRead += s.BytesRead
	t.WriteCalls += s.WriteCalls
	t.AskedMessagesPerSecond += s.AskedMessagesPerSecond
	t.AchievedMessagesPerSecond += s.AchievedMessagesPerSecond
	t.WriteBytesPerSecond += s.WriteBytesPerSecond
	t.ReadBytesPerSecond += s.ReadBytesPerSecond
	t.BlockedSeconds += s.BlockedSeconds
	t.Stalls += s.Stalls
	t.LongestStallSeconds = max(t.LongestStallSeconds, s.LongestStallSeconds)
	t.WriteBlockedP99 = max(t.WriteBlockedP99, s.WriteBlockedP99)
	t.PeakBytesInPipe += s.PeakBytesInPipe
	t.PeerWindowZeroSeconds = addPtr(t.PeerWindowZeroSeconds, s.PeerWindowZeroSeconds)
	t.RwndLimitedSeconds = addPtr(t.RwndLimitedSeconds, s.RwndLimitedSeconds)
	t.SndbufLimitedSeconds = addPtr(t.SndbufLimitedSeconds, s.SndbufLimitedSeconds)
	if s.PeakSendQueueBytes != nil {
		t.PeakSendQueueBytes = ptr(max(*s.PeakSendQueueBytes, deref(t.PeakSendQueueBytes)))
	}
}

// shares recomputes the fleet's shares over the connections' combined
// time (connTime, in connection-seconds).
func (t *Summary) shares(connTime float64) {
	if connTime <= 0 {
		return
	}
	t.BlockedShare = t.BlockedSeconds / connTime
	if t.PeerWindowZeroSeconds != nil {
		t.PeerWindowZeroShare = ptr(*t.PeerWindowZeroSeconds / connTime)
	}
	if t.RwndLimitedSeconds != nil {
		t.RwndLimitedShare = ptr(*t.RwndLimitedSeconds / connTime)
	}
}

// addPtr sums two figures that may be unknown (nil): known when either is.
func addPtr(a, b *float64) *float64 {
	if b == nil {
		return a
	}
	return ptr(deref(a) + *b)
}

func deref[T int64 | float64](p *T) T {
	if p == nil {
		return 0
	}
	return *p
}

// medianOf is the middle of xs (the lower middle for an even count).
func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
