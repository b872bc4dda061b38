package verdict

import (
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// TestWroteDoesNotAllocate: the write path of a connection whose pipe
// stays busy costs no allocation.
func TestWroteDoesNotAllocate(t *testing.T) {
	o := New(Options{})
	c := o.Open(flow.ConnInfo{Writes: true})
	c.Wrote(1, 0, false) // the first write into an empty pipe takes the slow path once
	if n := testing.AllocsPerRun(1000, func() { c.Wrote(64<<10, time.Microsecond, false) }); n != 0 {
		t.Errorf("Wrote allocates %v times per call, want 0", n)
	}
}

// TestObserverStallBlockResume drives one connection through what a paused
// server does to it, with real time: acks every 20 ms while it reads, then
// none while a write blocks, then acks again. The observer sees the stall
// while it lasts (Live) and the verdict describes it.
func TestObserverStallBlockResume(t *testing.T) {
	o := New(Options{StallThreshold: 50 * time.Millisecond, Interval: 10 * time.Millisecond})
	if c := o.Open(flow.ConnInfo{Reads: true}); c != (flow.Nop{}) {
		t.Errorf("a reading connection is followed: %T", c)
	}
	c := o.Open(flow.ConnInfo{Writes: true})
	const msg = 16 << 10
	c.Wrote(msg, time.Microsecond, false) // one message always in the pipe
	for range 10 {                        // reading: each message acked 20 ms later
		c.Wrote(msg, time.Microsecond, false)
		time.Sleep(20 * time.Millisecond)
		o.Pass(time.Now())
		c.Acked(msg)
	}
	if live := o.Live(time.Now()); live != "server reading" {
		t.Errorf("Live while the server reads = %q", live)
	}
	// The server stops; the path absorbs a message every 10 ms until the
	// observer calls it a stall (after 500 ms).
	n := 0
	for deadline := time.Now().Add(2 * time.Second); !strings.HasPrefix(o.Live(time.Now()), "server stalled") && time.Now().Before(deadline); n++ {
		c.Wrote(msg, time.Microsecond, false)
		time.Sleep(10 * time.Millisecond)
		o.Pass(time.Now())
	}
	if live := o.Live(time.Now()); !strings.Contains(live, "server stalled") || !strings.Contains(live, "writes not blocked yet") {
		t.Errorf("Live during the stall, before a write blocked = %q", live)
	}
	// Then a write blocks, until the server reads again.
	blocked := 300 * time.Millisecond
	time.Sleep(blocked)
	c.Wrote(msg, blocked, true)
	c.Acked(int64(n+2) * msg)
	o.Pass(time.Now())
	if live := o.Live(time.Now()); !strings.HasPrefix(live, "server resumed") {
		t.Errorf("Live after the stall = %q", live)
	}
	v := o.Verdict(time.Now())
	t.Logf("%s (%s): %s %q", v.Outcome, v.Confidence, v.Summary, v.Reasons)
	if v.Outcome != OutcomeBlocked || v.AbsorbedBytes == nil || v.BlockedConnections != 1 {
		t.Fatalf("verdict %+v, want blocked", v)
	}
	// In the pipe when the write blocked: the one unacked message and the
	// n the path absorbed.
	if got, want := *v.AbsorbedBytes, int64(n+1)*msg; got != want {
		t.Errorf("absorbed %d bytes, want %d", got, want)
	}
	if d := *v.BlockDelaySeconds; d < 0.5 || d > 1.5 {
		t.Errorf("block delay %.3f s, want about the 500 ms the path absorbed for", d)
	}
	if v.AckIntervalSeconds < 0.015 || v.AckIntervalSeconds > 0.1 {
		t.Errorf("ack interval %v s, want about 0.02", v.AckIntervalSeconds)
	}
	if v.OwnSendQueueBytes != nil {
		t.Errorf("own send queue %d without a socket", *v.OwnSendQueueBytes)
	}
}
