//go:build linux

package sockstat

import (
	"context"
	"testing"
	"time"
)

// TestRunPacedCountsCPU: a pass's cost is its thread's CPU time, not the
// time it took: a pass that waits 30 ms without using the CPU (as one
// preempted on a busy machine) does not hold the next back 270 ms, while
// one that uses 10 ms of CPU holds it back 90 ms. Side by side over the
// same 600 ms: the waiting passes run every 30 ms or so, the busy ones
// every 100 ms.
func TestRunPacedCountsCPU(t *testing.T) {
	count := func(pass func()) int {
		ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
		defer cancel()
		n := 0
		runPaced(ctx, 10*time.Millisecond, func(time.Time) bool { n++; pass(); return false }, nil)
		return n
	}
	waiting := count(func() { time.Sleep(30 * time.Millisecond) })
	// Busy for 10 ms of the thread's CPU, not of the wall clock: on a busy
	// machine a wall-clock spin is preempted and uses less, and its passes
	// are rightly held back less (10 busy passes against 19 were seen).
	busy := count(func() {
		start, ok := threadCPU()
		for now := start; ok && now-start < 10*time.Millisecond; now, ok = threadCPU() {
		}
	})
	t.Logf("in 600 ms: %d passes waiting 30 ms each, %d passes using 10 ms of CPU each", waiting, busy)
	if waiting < 8 || waiting < 2*busy {
		t.Errorf("%d waiting passes, %d busy ones: want the waiting ones not held back by their wait (at least 8, twice the busy ones)", waiting, busy)
	}
	if busy > 10 {
		t.Errorf("%d busy passes in 600 ms: want them held back nine times their 10 ms of CPU", busy)
	}
}
