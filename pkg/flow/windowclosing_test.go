package flow

import (
	"testing"
	"time"
)

// TestWindowClosing: the closing named as the one that held is the first
// that stayed shut WindowHeldMin, not a startup instant; a closing still
// in progress counts up to now; a window that never held has only its
// first closing.
func TestWindowClosing(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type step struct {
		at   int // ms
		shut bool
	}
	tests := []struct {
		name        string
		steps       []step
		now         int // ms, for at
		first, held time.Time
	}{
		// gRPC's first 64 KiB filled at 11 ms, widened at 12 ms; the pause
		// shuts it at 2000 ms until 4000 ms.
		{"startup instant, then the pause", []step{{11, true}, {12, false}, {2000, true}, {4000, false}}, 5000, ms(11), ms(2000)},
		// The pause still on at now: it held by now.
		{"in progress", []step{{11, true}, {12, false}, {2000, true}}, 2150, ms(11), ms(2000)},
		// Still on, but not yet WindowHeldMin long.
		{"in progress, too short yet", []step{{2000, true}}, 2050, ms(2000), time.Time{}},
		// Only instants: none held.
		{"instants only", []step{{11, true}, {12, false}, {500, true}, {550, false}}, 5000, ms(11), time.Time{}},
		// Repeated notes of a shut window do not restart its closing.
		{"shut seen twice", []step{{1000, true}, {1050, true}, {1120, false}}, 5000, ms(1000), ms(1000)},
		// Two closings that held: the first is named.
		{"two held", []step{{1000, true}, {1200, false}, {3000, true}, {4000, false}}, 5000, ms(1000), ms(1000)},
		{"never shut", []step{{10, false}}, 5000, time.Time{}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w windowClosing
			for _, s := range tt.steps {
				w.note(ms(s.at), s.shut)
			}
			first, held := w.at(ms(tt.now))
			if !first.Equal(tt.first) || !held.Equal(tt.held) {
				t.Errorf("first %v, held %v; want %v, %v", first.Sub(t0), held.Sub(t0), tt.first.Sub(t0), tt.held.Sub(t0))
			}
		})
	}
}
