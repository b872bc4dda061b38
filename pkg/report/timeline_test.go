package report

import (
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"testing"
	"time"
)

// TestTimelineBounded fills a timeline past its bound: the points halve,
// the interval doubles, and every point stays on the interval's grid.
func TestTimelineBounded(t *testing.T) {
	tl := &timeline{interval: TimelineInterval}
	// A run four times as long as the first interval's points cover.
	for {
		due := time.Duration(len(tl.points)) * tl.interval // as run computes it
		if due >= 4*MaxTimelinePoints*TimelineInterval {
			break
		}
		tl.add(TimelinePoint{Seconds: due.Seconds()})
	}
	if n := len(tl.points); n > MaxTimelinePoints || n < MaxTimelinePoints/2 {
		t.Fatalf("%d points, want between %d and %d", n, MaxTimelinePoints/2, MaxTimelinePoints)
	}
	if tl.interval != 4*TimelineInterval {
		t.Errorf("interval %v, want %v after two halvings", tl.interval, 4*TimelineInterval)
	}
	for i, p := range tl.points {
		if want := (time.Duration(i) * tl.interval).Seconds(); p.Seconds < want-1e-9 || p.Seconds > want+1e-9 {
			t.Fatalf("point %d at %v s, want %v s", i, p.Seconds, want)
		}
	}
}

// TestTimelineEndsWithTotals: the last point is the summary's totals, to
// the byte, and blocked time makes a band.
func TestTimelineEndsWithTotals(t *testing.T) {
	r := NewRecorder()
	stop := r.KeepTimeline(time.Now())
	c := r.Open(flow.ConnInfo{}).(*recConn)
	time.Sleep(250 * time.Millisecond)
	c.Wrote(1000, 300*time.Millisecond, true)
	c.Acked(600)
	stop()
	stop() // twice is fine
	s := r.Summarize(Run{Connections: 1}, 400*time.Millisecond, nil)
	tl := s.Timeline
	if tl == nil || len(tl.Points) < 3 {
		t.Fatalf("timeline %+v", tl)
	}
	last := tl.Points[len(tl.Points)-1]
	if last.BytesWritten != s.BytesWritten || last.BytesAcked != s.BytesAcked || last.Seconds != s.DurationSeconds {
		t.Errorf("last point %+v, summary written %d acked %d in %v s", last, s.BytesWritten, s.BytesAcked, s.DurationSeconds)
	}
	if len(tl.BlockedBands) != 1 {
		t.Errorf("blocked bands %+v, want one", tl.BlockedBands)
	}
}
