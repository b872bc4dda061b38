package report_test

import (
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/report"
)

// TestBlockedCountsWritesInProgress: the live display's blocked time
// includes a write that is still blocked, and counts it once when it
// returns.
func TestBlockedCountsWritesInProgress(t *testing.T) {
	rec := report.NewRecorder()
	c := rec.Open(flow.ConnInfo{Protocol: flow.TCP, Writes: true})
	ws, ok := c.(flow.WriteStartObserver)
	if !ok {
		t.Fatal("the recorder's connection observer does not take write starts")
	}
	began := time.Now().Add(-2 * time.Second)
	ws.WriteStarting(began)
	if got := rec.Totals().Blocked; got < 2*time.Second || got > 3*time.Second {
		t.Errorf("blocked while the write is in progress = %s, want about 2s", got)
	}
	c.Wrote(65536, time.Since(began), true)
	if got := rec.Totals().Blocked; got < 2*time.Second || got > 3*time.Second {
		t.Errorf("blocked after the write returned = %s, want about 2s (counted once)", got)
	}
	c.Closed(nil)
	if got := rec.Totals().Blocked; got < 2*time.Second || got > 3*time.Second {
		t.Errorf("blocked after close = %s, want about 2s", got)
	}
}
