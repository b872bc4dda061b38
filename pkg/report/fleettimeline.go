package report

import (
	"bytes"
	"io"
)

// fleetTimeline sums the instances' timelines on one grid, the coarsest of
// their intervals. The fleet starts together (--start-at), so the fleet's
// bytes at t are the sum of each instance's at t (its last point at or
// before t). The last point sums the instances' last points, which carry
// their reports' totals, so the fleet's timeline ends on the fleet's
// totals to the byte. nil when an instance kept no timeline.
func fleetTimeline(ins []Summary, conns int) *Timeline {
	var interval, end float64
	kernel, judged := false, false
	for _, s := range ins {
		if s.Timeline == nil || len(s.Timeline.Points) == 0 {
			return nil
		}
		tl := s.Timeline
		interval = max(interval, tl.IntervalSeconds)
		end = max(end, tl.Points[len(tl.Points)-1].Seconds)
		kernel = kernel || tl.PeerWindowZeroBands != nil
		judged = judged || tl.ServerStoppedBands != nil
	}
	if interval <= 0 {
		return nil
	}
	var pts []TimelinePoint
	for t := interval; t < end && len(pts) < MaxTimelinePoints; t += interval {
		pts = append(pts, sumAt(ins, t, false))
	}
	last := sumAt(ins, end, true)
	last.Seconds = end
	pts = append(pts, last)
	out := &Timeline{IntervalSeconds: interval, Points: pts}
	out.BlockedBands = bands(pts, func(a, b TimelinePoint) bool {
		dt := b.Seconds - a.Seconds
		return dt > 0 && (b.BlockedSeconds-a.BlockedSeconds)/(dt*float64(max(conns, 1))) >= 0.5
	})
	if kernel {
		out.PeerWindowZeroBands = bands(pts, func(_, b TimelinePoint) bool { return b.PeerWindowZeroConnections > 0 })
	}
	if judged {
		out.ServerStoppedBands = bands(pts, func(_, b TimelinePoint) bool { return b.StalledConnections > 0 })
	}
	return out
}

// sumAt adds the instances' points at t (each one's last at or before t;
// with final, each one's last point). The connection counts stay -1 when
// no instance has that view.
func sumAt(ins []Summary, t float64, final bool) TimelinePoint {
	sum := TimelinePoint{Seconds: t, PeerWindowZeroConnections: -1, StalledConnections: -1}
	for _, s := range ins {
		pts := s.Timeline.Points
		p := pts[len(pts)-1]
		if !final {
			p = pointAt(pts, t)
		}
		sum.BytesWritten += p.BytesWritten
		sum.BytesAcked += p.BytesAcked
		sum.BytesRead += p.BytesRead
		sum.BytesInPipe += p.BytesInPipe
		sum.BlockedSeconds += p.BlockedSeconds
		sum.PeerWindowZeroConnections = addCount(sum.PeerWindowZeroConnections, p.PeerWindowZeroConnections)
		sum.StalledConnections = addCount(sum.StalledConnections, p.StalledConnections)
	}
	return sum
}

// pointAt is an instance's point at t: its last at or before t, or none
// yet (zero counts, unknown connection counts).
func pointAt(pts []TimelinePoint, t float64) TimelinePoint {
	p := TimelinePoint{PeerWindowZeroConnections: -1, StalledConnections: -1}
	for _, q := range pts {
		if q.Seconds > t {
			break
		}
		p = q
	}
	return p
}

// addCount adds connection counts where -1 means "not known".
func addCount(a, b int) int {
	switch {
	case b < 0:
		return a
	case a < 0:
		return b
	}
	return a + b
}

// WriteHTML writes the fleet as one self-contained page, the same page as
// one instance's (--report-html), drawn from the fleet's summed timeline,
// with the fleet report's text (totals, each instance's line, the fleet
// verdict).
func (fs FleetSummary) WriteHTML(w io.Writer) error {
	var text bytes.Buffer
	if err := fs.WriteText(&text); err != nil {
		return err
	}
	return fs.Summary.writeHTML(w, text.String())
}
