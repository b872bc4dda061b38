package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/report"
)

// TestClientLoop: bp-client --loop repeats its run (as docker-compose and
// Cloud Foundry run it), prints one report per run with its own run id and
// byte counts, keeps its metrics listener up throughout with counters that
// add up over the runs, and exits 130 on SIGINT.
func TestClientLoop(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	const payload, count = 1000, 50 // 50,000 bytes per run
	c := startClient(t, "--target", srv.TCPURL(), "--loop", "--loop-pause", "100ms", "--run-id", "loop",
		"--payload-size", fmt.Sprint(payload), "--count", fmt.Sprint(count), "--duration", "0")

	// Reports are JSON objects one after another on stdout.
	var reports []report.Summary
	eventually(t, 30*time.Second, func() string {
		reports = reports[:0]
		dec := json.NewDecoder(strings.NewReader(c.Stdout()))
		for {
			var s report.Summary
			if dec.Decode(&s) != nil {
				break
			}
			reports = append(reports, s)
		}
		if len(reports) < 3 {
			return fmt.Sprintf("%d reports so far", len(reports))
		}
		return ""
	})
	for i, s := range reports[:3] {
		if want := fmt.Sprintf("loop-%d", i+1); s.RunID != want {
			t.Errorf("report %d: run id %q, want %q", i, s.RunID, want)
		}
		if !s.Completed || s.BytesWritten != payload*count || s.BytesAcked != payload*count {
			t.Errorf("report %d (%s): completed %v, written %d, acked %d; want %d each (a report per run, not cumulative)",
				i, s.RunID, s.Completed, s.BytesWritten, s.BytesAcked, payload*count)
		}
	}
	// The metrics listener stayed up and counts every run.
	m := scrape(t, c.MetricsURL)
	if opened := m.Sum("bp_connections_opened_total"); opened < 3 {
		t.Errorf("bp_connections_opened_total %v, want at least 3 after 3 runs", opened)
	}
	if written := m.Sum("bp_bytes_written_total"); written < 3*payload*count {
		t.Errorf("bp_bytes_written_total %v, want at least %d", written, 3*payload*count)
	}
	if c.Exited() {
		t.Fatal("client exited while looping")
	}
	c.Signal(t, syscall.SIGINT)
	if code := c.Wait(t, 20*time.Second); code != 130 {
		t.Errorf("exit status %d after SIGINT, want 130", code)
	}
}
