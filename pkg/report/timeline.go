package report

import (
	"sync"
	"time"
)

// Timeline is a run sampled at a fixed interval: what the HTML report
// draws, and what --output json gives users to plot their own way. Its
// last point is the run's end with the report's own totals, so the
// timeline and the report agree to the byte.
type Timeline struct {
	// IntervalSeconds is the time between two points (the last one: the
	// run's end, may come sooner). It starts at TimelineInterval and
	// doubles whenever the run would need more than MaxTimelinePoints.
	IntervalSeconds float64         `json:"interval_seconds"`
	Points          []TimelinePoint `json:"points"`
	// BlockedBands are the spans when writes were blocked for at least half
	// of the interval (per connection); PeerWindowZeroBands when the peer
	// advertised a zero window (kernel's view: absent without it);
	// ServerStoppedBands when the verdict saw the server stopped.
	BlockedBands        []Band `json:"blocked_bands"`
	PeerWindowZeroBands []Band `json:"peer_window_zero_bands,omitempty"`
	ServerStoppedBands  []Band `json:"server_stopped_bands,omitempty"`
}

// TimelinePoint is the run at one moment; counters count from the run's
// start.
type TimelinePoint struct {
	Seconds        float64 `json:"t"`
	BytesWritten   int64   `json:"bytes_written"`
	BytesAcked     int64   `json:"bytes_acked"`
	BytesRead      int64   `json:"bytes_read"`
	BytesInPipe    int64   `json:"bytes_in_pipe"`
	BlockedSeconds float64 `json:"blocked_seconds"`
	// PeerWindowZeroConnections: connections whose peer advertised a zero
	// window at the last socket sample (-1: no kernel view).
	PeerWindowZeroConnections int `json:"peer_window_zero_connections"`
	// StalledConnections: connections whose server the verdict sees
	// stopped (-1: no verdict kept).
	StalledConnections int `json:"stalled_connections"`
}

// Band is a span of the run, in seconds from its start.
type Band struct {
	From    float64 `json:"from"`
	To      float64 `json:"to"`
	Seconds float64 `json:"seconds"`
}

// TimelineInterval is the first interval between points; MaxTimelinePoints
// bounds a long run's timeline (about 2,000 points: an hour at 2 s).
const (
	TimelineInterval  = 100 * time.Millisecond
	MaxTimelinePoints = 2000
)

// timeline collects the points while the run goes.
type timeline struct {
	mu       sync.Mutex
	start    time.Time
	interval time.Duration
	points   []TimelinePoint
	stop     chan struct{}
	done     chan struct{}
}

// KeepTimeline samples the recorder every TimelineInterval from start until
// the returned stop is called (it waits for the sampler to end); the
// summary then carries the timeline. Safe to stop twice.
func (r *Recorder) KeepTimeline(start time.Time) (stop func()) {
	tl := &timeline{start: start, interval: TimelineInterval, stop: make(chan struct{}), done: make(chan struct{})}
	r.mu.Lock()
	r.timeline = tl
	r.mu.Unlock()
	tl.add(r.point(start, Totals{Stalled: -1}))
	go tl.run(r)
	var once sync.Once
	return func() {
		once.Do(func() { close(tl.stop) })
		<-tl.done
	}
}

// run samples on the interval's grid (start + k*interval) until stopped.
func (tl *timeline) run(r *Recorder) {
	defer close(tl.done)
	for {
		tl.mu.Lock()
		next := tl.start.Add(time.Duration(len(tl.points)) * tl.interval)
		tl.mu.Unlock()
		select {
		case <-tl.stop:
			return
		case <-time.After(time.Until(next)):
			tl.add(r.point(next, r.Totals()))
		}
	}
}

// add appends p, halving the points (and doubling the interval) when the
// timeline is full: every other point goes, so the rest stay on the grid.
func (tl *timeline) add(p TimelinePoint) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(tl.points) >= MaxTimelinePoints {
		kept := tl.points[:0]
		for i := 0; i < len(tl.points); i += 2 {
			kept = append(kept, tl.points[i])
		}
		tl.points = kept
		tl.interval *= 2 // p, due at the old len*interval, is on the new grid too
	}
	tl.points = append(tl.points, p)
}

// point is totals t as a point at time at.
func (r *Recorder) point(at time.Time, t Totals) TimelinePoint {
	p := TimelinePoint{
		BytesWritten: t.Written, BytesAcked: t.Acked, BytesRead: t.Read, BytesInPipe: max(t.InPipe, 0),
		BlockedSeconds: t.Blocked.Seconds(), PeerWindowZeroConnections: -1, StalledConnections: t.Stalled,
	}
	r.mu.Lock()
	if r.timeline != nil {
		p.Seconds = at.Sub(r.timeline.start).Seconds()
	}
	r.mu.Unlock()
	if t.Kernel != nil {
		p.PeerWindowZeroConnections = t.Kernel.PeerWindowZeroConnections
	}
	return p
}

// finish ends the timeline with the run's end, at elapsed with totals t
// (the summary's), and finds its bands; nil when no timeline was kept.
func (r *Recorder) finishTimeline(elapsed time.Duration, t Totals, conns int) *Timeline {
	r.mu.Lock()
	tl := r.timeline
	r.mu.Unlock()
	if tl == nil {
		return nil
	}
	end := r.point(tl.start.Add(elapsed), t)
	end.Seconds = elapsed.Seconds()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	pts := append([]TimelinePoint{}, tl.points...)
	for len(pts) > 0 && pts[len(pts)-1].Seconds >= end.Seconds {
		pts = pts[:len(pts)-1] // sampled after the run's end
	}
	pts = append(pts, end)
	out := &Timeline{IntervalSeconds: tl.interval.Seconds(), Points: pts}
	out.BlockedBands = bands(pts, func(a, b TimelinePoint) bool {
		dt := b.Seconds - a.Seconds
		return dt > 0 && (b.BlockedSeconds-a.BlockedSeconds)/(dt*float64(max(conns, 1))) >= 0.5
	})
	if t.Kernel != nil {
		out.PeerWindowZeroBands = bands(pts, func(_, b TimelinePoint) bool { return b.PeerWindowZeroConnections > 0 })
	}
	if t.Stalled >= 0 {
		out.ServerStoppedBands = bands(pts, func(_, b TimelinePoint) bool { return b.StalledConnections > 0 })
	}
	return out
}

// bands are the spans between consecutive points for which on holds,
// joined where they touch. Never nil, so the JSON has [] rather than null.
func bands(pts []TimelinePoint, on func(a, b TimelinePoint) bool) []Band {
	out := []Band{}
	for i := 1; i < len(pts); i++ {
		if !on(pts[i-1], pts[i]) {
			continue
		}
		from, to := pts[i-1].Seconds, pts[i].Seconds
		if n := len(out); n > 0 && out[n-1].To == from {
			out[n-1].To = to
			out[n-1].Seconds = to - out[n-1].From
			continue
		}
		out = append(out, Band{From: from, To: to, Seconds: to - from})
	}
	return out
}
