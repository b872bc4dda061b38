package main

import (
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// TestBackoff: the wait doubles per attempt, stays within [d/2, d] of its
// doubling, and never passes the cap.
func TestBackoff(t *testing.T) {
	p := reconnectPolicy{max: 10, wait: 100 * time.Millisecond, cap: time.Second}
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		want *= time.Millisecond
		for range 50 {
			if d := p.backoff(n); d < want/2 || d > want {
				t.Fatalf("attempt %d: wait %s, want %s..%s", n, d, want/2, want)
			}
		}
	}
	if d := p.backoff(1000); d > time.Second || d < 500*time.Millisecond {
		t.Errorf("attempt 1000: wait %s overflows the cap", d)
	}
}

// TestRest: what is left of a connection's run after a break.
func TestRest(t *testing.T) {
	payload := make([]byte, 10)
	mk := func(dir flow.Direction, total int64, dur time.Duration) connRun {
		cr := connRun{hello: flow.Hello{Direction: dir, TotalBytes: total, DurationMS: dur.Milliseconds()},
			plan: flow.Plan{PeerWrites: dir.ServerWrites()}}
		if dir.ClientWrites() {
			cr.plan.Write = &flow.WritePlan{Payload: payload, TotalBytes: total, Duration: dur}
		}
		return cr
	}
	now := time.Now()
	for _, tc := range []struct {
		name          string
		cr            connRun
		start         time.Time
		acked, read   int64
		left          bool
		dir           flow.Direction
		helloTotal    int64
		writeTotal    int64 // -1: no writing
		peerWrites    bool
		durationAbove time.Duration // the hello's duration is above this (0: none)
	}{
		// Up, by count: the unacknowledged rest is written again.
		{"up count", mk(flow.Up, 100, 0), now, 30, 0, true, flow.Up, 70, 70, false, 0},
		// Up, all acknowledged before the break: nothing left.
		{"up done", mk(flow.Up, 100, 0), now, 100, 0, false, flow.Up, 0, 0, false, 0},
		// Down, by count: the server writes what did not arrive.
		{"down count", mk(flow.Down, 100, 0), now, 0, 40, true, flow.Down, 60, -1, true, 0},
		// Both: each side's rest; the hello carries the server's.
		{"both", mk(flow.Both, 100, 0), now, 30, 40, true, flow.Both, 60, 70, true, 0},
		// Both, the client's part done: only the server's writing is left.
		{"both up done", mk(flow.Both, 100, 0), now, 100, 40, true, flow.Down, 60, -1, true, 0},
		// Both, the server's part done: only the client's.
		{"both down done", mk(flow.Both, 100, 0), now, 30, 100, true, flow.Up, 70, 70, false, 0},
		// By duration: the time left from the first attempt.
		{"duration", mk(flow.Up, 0, 10*time.Second), now.Add(-4 * time.Second), 5, 0, true, flow.Up, 0, 0, false, 5 * time.Second},
		// Duration over: nothing left.
		{"duration over", mk(flow.Up, 0, time.Second), now.Add(-2 * time.Second), 5, 0, false, flow.Up, 0, 0, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, p, left := tc.cr.rest(tc.start, tc.acked, tc.read)
			if left != tc.left {
				t.Fatalf("left = %v, want %v", left, tc.left)
			}
			if !left {
				return
			}
			if h.Direction != tc.dir || h.TotalBytes != tc.helloTotal || p.PeerWrites != tc.peerWrites {
				t.Errorf("hello %s total %d, peer writes %v; want %s %d %v", h.Direction, h.TotalBytes, p.PeerWrites, tc.dir, tc.helloTotal, tc.peerWrites)
			}
			switch {
			case tc.writeTotal < 0 && p.Write != nil:
				t.Errorf("still writes %d", p.Write.TotalBytes)
			case tc.writeTotal >= 0 && (p.Write == nil || p.Write.TotalBytes != tc.writeTotal):
				t.Errorf("write plan %+v, want total %d", p.Write, tc.writeTotal)
			}
			if tc.durationAbove > 0 {
				d := h.Duration()
				if d <= tc.durationAbove || d > 6*time.Second || p.Write.Duration-d < 0 || p.Write.Duration-d >= time.Millisecond {
					t.Errorf("duration left %s (write plan %s), want about 6s", d, p.Write.Duration)
				}
			}
			if tc.cr.plan.Write != nil && tc.cr.plan.Write.TotalBytes != tc.cr.hello.TotalBytes && tc.cr.hello.Direction != flow.Both {
				t.Errorf("the original plan was changed")
			}
		})
	}
}
