package verdict

import (
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// TestLargeWritesAckedMidWrite: writes so large that the server reads and
// acks much of each while it is still in progress (4 MiB payloads on a
// 100 Mbit/s path: 335 ms a write). The bytes a write has handed the
// kernel are known only when it returns, so the acks overtake the count
// written; they were still acks moving. With real time: three writes of
// 600 ms, acks every 20 ms all through, are no stall (the observer placed
// one from the first write's start to its end: "the server stopped reading
// at 31 ms" on wan-direct with --payload-size 4MiB); then the server stops
// in the middle of a write, and that is the stall, from the last ack on,
// though the acks have passed every byte the completed writes wrote.
func TestLargeWritesAckedMidWrite(t *testing.T) {
	o := New(Options{StallThreshold: 50 * time.Millisecond, Interval: 10 * time.Millisecond})
	c := o.Open(flow.ConnInfo{Writes: true})
	ws := c.(flow.WriteStartObserver)
	const msg, steps = 1 << 20, 30 // a write: 30 steps of 20 ms, acked piece by piece
	var acked int64
	write := func(ackSteps int) {
		began := time.Now()
		ws.WriteStarting(began)
		for i := range steps {
			time.Sleep(20 * time.Millisecond)
			o.Pass(time.Now())
			if i < ackSteps {
				c.Acked(msg / steps)
				acked += msg / steps
			}
		}
		c.Wrote(msg, time.Since(began), true)
	}
	for range 3 {
		write(steps)
	}
	if live := o.Live(time.Now()); live != "server reading" {
		t.Errorf("Live while the server reads through large writes = %q", live)
	}
	if v := o.Verdict(time.Now()); v.Stalls != 0 {
		t.Fatalf("%d stalls while acks moved every 20 ms: %s %q", v.Stalls, v.Summary, v.Reasons)
	}

	// The server stops 5 steps (100 ms) into the fourth write, which then
	// blocks; the observer calls it a stall during the write.
	readAtStop := acked + 5*(msg/steps)
	stopAt := o.since(time.Now()) + 5*20*time.Millisecond
	began := time.Now()
	ws.WriteStarting(began)
	for i := 0; i < 60; i++ {
		time.Sleep(20 * time.Millisecond)
		o.Pass(time.Now())
		if i < 5 {
			c.Acked(msg / steps)
			acked += msg / steps
		}
	}
	if live := o.Live(time.Now()); !strings.Contains(live, "server stalled") || strings.Contains(live, "-") {
		t.Errorf("Live during the stop, a write in progress = %q (want it stalled, and no negative figure)", live)
	}
	c.Acked(readAtStop + msg - acked) // reading again
	c.Wrote(msg, time.Since(began), true)
	o.Pass(time.Now())
	v := o.Verdict(time.Now())
	t.Logf("%s (%s): %s %q", v.Outcome, v.Confidence, v.Summary, v.Reasons)
	if v.Stalls != 1 || v.ServerStoppedAtSeconds == nil || v.ServerReadAtStopBytes == nil {
		t.Fatalf("%d stalls, stopped at %v, read at stop %v: want the one stop", v.Stalls, v.ServerStoppedAtSeconds, v.ServerReadAtStopBytes)
	}
	if got := *v.ServerReadAtStopBytes; got != readAtStop {
		t.Errorf("server read %d bytes when it stopped, want %d (its last ack)", got, readAtStop)
	}
	if d := time.Duration(*v.ServerStoppedAtSeconds*float64(time.Second)) - stopAt; d < -60*time.Millisecond || d > 60*time.Millisecond {
		t.Errorf("stopped at %.3f s, %s from the last ack's %.3f s", *v.ServerStoppedAtSeconds, d, stopAt.Seconds())
	}
}
