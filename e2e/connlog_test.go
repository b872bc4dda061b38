package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// connLines counts a process's connection lines so far (opened, closed,
// closed at shutdown, failed) and the ones that carry "suppressed".
func connLines(p *Proc) (lines, suppressed int) {
	for _, l := range p.Logs("") {
		if msg, _ := l["msg"].(string); strings.HasPrefix(msg, "connection ") && msg != "connection progress" {
			lines++
			if _, ok := l["suppressed"]; ok {
				suppressed++
			}
		}
	}
	return lines, suppressed
}

// TestConnLogBounded (issue 13, defect 7): 1,500 connections that say
// hello and close at once wrote two lines each (3,000 here; 5,000 cycles
// wrote 8,500 lines). Now the connection lines are bounded like the
// refusals: a burst of 50 connections, then 10 a second, each logged one
// with both its lines, a later one saying how many were left out.
func TestConnLogBounded(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	const cycles = 1500
	began := time.Now()
	for i := range cycles {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := flow.DialTCP(ctx, srv.TCPAddr, flow.Hello{RunID: "cycle"}, flow.SocketOptions{})
		cancel()
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		c.Close()
	}
	// Let the last ones end, then one more after a pause, which is logged.
	time.Sleep(500 * time.Millisecond)
	elapsed := time.Since(began).Seconds()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := flow.DialTCP(ctx, srv.TCPAddr, flow.Hello{RunID: "last"}, flow.SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	eventually(t, 5*time.Second, func() string {
		for _, l := range srv.Logs("connection opened") {
			if l["run"] == "last" {
				return ""
			}
		}
		return "the connection after the flood was not logged"
	})
	lines, suppressed := connLines(srv.Proc)
	// Two lines per logged connection: the burst, the rate over the run,
	// and failures of connections left out (5 at once per reason, then
	// one per 10 s), with slack.
	bound := 2*(50+int(10*elapsed)+5) + 20
	t.Logf("%d cycles in %.1fs: %d connection lines (bound %d), %d with suppressed", cycles, elapsed, lines, bound, suppressed)
	if lines > bound {
		t.Errorf("%d connection lines for %d cycles in %.1fs, want at most %d", lines, cycles, elapsed, bound)
	}
	if suppressed == 0 {
		t.Error("no line says how many connections were left out (suppressed)")
	}
	if m := scrape(t, srv.MetricsURL()); m.Value(t, "bp_connections_opened_total", "protocol", "tcp") < cycles {
		t.Errorf("the counters must count every connection")
	}
}
