package flow

import (
	"testing"
	"time"
)

// TestWriteClock follows one connection's writes through the clock.
func TestWriteClock(t *testing.T) {
	var c WriteClock
	if c.StartsSeen() {
		t.Error("a new clock has seen a start")
	}
	if _, ok := c.Began(); ok {
		t.Error("a new clock has a write in progress")
	}
	c.Stop() // a writer that does not report starts
	if c.StartsSeen() {
		t.Error("Stop without Start counts as a start")
	}
	began := time.Now().Add(-time.Second)
	c.Start(began)
	if got, ok := c.Began(); !ok || !got.Equal(began) || got.Sub(began) != 0 {
		t.Errorf("Began = %v, %v; want %v, true", got, ok, began)
	}
	if d, ok := c.Elapsed(began.Add(3 * time.Second)); !ok || d != 3*time.Second {
		t.Errorf("Elapsed = %v, %v; want 3s, true", d, ok)
	}
	c.Stop()
	if _, ok := c.Elapsed(time.Now()); ok || !c.StartsSeen() {
		t.Errorf("after Stop: in progress %v, starts seen %v; want false, true", ok, c.StartsSeen())
	}
}

// TestWriteClockAllocs: the write path allocates nothing.
func TestWriteClockAllocs(t *testing.T) {
	var c WriteClock
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() { c.Start(now); c.Elapsed(now); c.Stop() }); n != 0 {
		t.Errorf("%v allocations per write, want 0", n)
	}
}
