//go:build linux

package sockstat

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// TestRunPacedWaitsWhenIdle: after a pass that found nothing, the next
// waits for a wake-up, and comes an interval after it; with no wake channel
// (the host sampler's) passes go on every interval.
func TestRunPacedWaitsWhenIdle(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wake := make(chan struct{}, 1)
	var passes atomic.Int32
	passAt := make(chan time.Time, 10)
	go runPaced(ctx, 10*time.Millisecond, func(now time.Time) bool {
		passes.Add(1)
		passAt <- now
		return true
	}, wake)
	select {
	case <-passAt:
	case <-time.After(2 * time.Second):
		t.Fatal("no first pass within 2 s, every 10 ms")
	}
	time.Sleep(200 * time.Millisecond)
	if n := passes.Load(); n != 1 {
		t.Fatalf("%d passes in the 200 ms after one that found nothing to sample, every 10 ms: want none, a wait for a wake-up", n-1)
	}
	woke := time.Now()
	wake <- struct{}{}
	select {
	case at := <-passAt:
		if d := at.Sub(woke); d < 10*time.Millisecond {
			t.Errorf("the pass after the wake-up came %s after it, want an interval (10 ms)", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no pass within 2 s of a wake-up")
	}

	var busy atomic.Int32
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	runPaced(ctx2, 10*time.Millisecond, func(time.Time) bool { busy.Add(1); return true }, nil)
	if n := busy.Load(); n < 5 {
		t.Errorf("%d passes in 200 ms every 10 ms with no wake channel: want them to go on (at least 5)", n)
	}
}

// TestSamplerIdleWakes: a running Sampler with nothing registered stops
// ticking, yet samples a real connection opened later (its registration
// wakes it) and, once it closes, runs the pass that takes its gauges away.
func TestSamplerIdleWakes(t *testing.T) {
	if !Supported() {
		t.Skip("no socket statistics here")
	}
	s := NewSampler(SamplerOptions{Interval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	tcp := flow.ProtocolIndex(flow.TCP)
	sampled := func() int {
		stats, _ := s.Stats()
		return stats[tcp].Sampled
	}
	waitFor := func(what string, want int) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for sampled() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the last pass sampled %d connections after 2 s, want %d", what, sampled(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if !s.pass(time.Now()) {
		t.Fatal("a pass with nothing registered reported work: Run would tick for nothing")
	}
	time.Sleep(100 * time.Millisecond) // idle by now: one empty pass, then a wait
	w, _ := tcpPair(t)
	obs := s.Open(flow.ConnInfo{Protocol: flow.TCP, Conn: w, Writes: true})
	if s.pass(time.Now()) {
		t.Error("a pass with a connection registered reported nothing to sample")
	}
	waitFor("a connection opened while idle", 1)
	obs.(flow.ClosingObserver).Closing()
	obs.Closed(nil)
	waitFor("the connection closed", 0)
}
