package flow

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestRateWait: the writer's pacing keeps the rate, waits out the run's
// time when the next turn is past the deadline (rate.Limiter.Wait gives up
// at once, and a run ended up to one turn early), ends with its context,
// and allocates nothing per wait.
func TestRateWait(t *testing.T) {
	w := newRateWait(100)
	defer w.stop()
	began := time.Now()
	for range 21 {
		if err := w.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// The first turn is at once, the other 20 are 10 ms apart.
	if took := time.Since(began); took < 180*time.Millisecond || took > time.Second {
		t.Errorf("21 writes at 100/s took %s, want about 200 ms", took)
	}

	slow := newRateWait(1)
	defer slow.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := slow.wait(ctx); err != nil {
		t.Fatalf("first turn: %v", err)
	}
	dl, _ := ctx.Deadline()
	if err := slow.wait(ctx); !errors.Is(err, errRateDeadline) || time.Now().Before(dl) || time.Since(dl) > 500*time.Millisecond {
		t.Errorf("a turn 1 s away with 100 ms left: %v %s after the deadline, want errRateDeadline at the deadline", err, time.Since(dl))
	}
	ended, stop := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, stop)
	if err := slow.wait(ended); !errors.Is(err, context.Canceled) {
		t.Errorf("wait with its context ended: %v, want context.Canceled", err)
	}

	// Above one turn a millisecond, the rate holds though a short timer
	// fires 1.1 ms late: 4,000 a second for 300 ms is about 1,200 turns
	// (a burst of one made about 270 of them).
	high := newRateWait(4000)
	defer high.stop()
	n := 0
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); n++ {
		if err := high.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n < 600 || n > 1200+5 {
		t.Errorf("%d turns at 4,000 a second in 300 ms, want about 1,200", n)
	}

	fast := newRateWait(20000)
	defer fast.stop()
	if n := testing.AllocsPerRun(50, func() { fast.wait(context.Background()) }); n != 0 {
		t.Errorf("%v allocations per wait, want 0", n)
	}
}
