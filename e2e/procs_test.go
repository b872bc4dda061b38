package e2e

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestProcsFitConnections holds bp-server and bp-client to package
// procs: the server runs on one processor while it serves at most one
// connection, on one per connection up to the CPUs, and gives them back a
// second after the connections end; the client runs on one processor per
// connection; a GOMAXPROCS in the environment wins on both. Each figure
// is the process's own runtime setting (go_sched_gomaxprocs_threads, the
// runtime's /sched/gomaxprocs:threads through client_golang's Go
// collector).
func TestProcsFitConnections(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs or more: with one, there is nothing to fit")
	}
	procs := func(url string) int {
		return int(scrape(t, url).Value(t, "go_sched_gomaxprocs_threads"))
	}
	want := func(what, url string, n int) func() string {
		return func() string {
			if got := procs(url); got != n {
				return fmt.Sprintf("%s runs on %d processors, want %d", what, got, n)
			}
			return ""
		}
	}
	srv := startServer(t, "--log-interval", "0")
	if got := procs(srv.MetricsURL()); got != 1 {
		t.Fatalf("idle bp-server runs on %d processors, want 1", got)
	}
	slow := []string{"--target", srv.TCPURL(), "--rate", "20", "--payload-size", "1KiB", "--duration", "3s"}
	one := startClient(t, slow...)
	two := startClient(t, append(slow, "--connections", "2")...)
	eventually(t, 5*time.Second, want("bp-client of 1 connection", one.MetricsURL, 1))
	eventually(t, 5*time.Second, want("bp-client of 2 connections", two.MetricsURL, 2))
	// One processor per connection, at most the runtime's default (the
	// CPUs: 2 on the machines this runs on).
	eventually(t, 5*time.Second, want("bp-server of 3 connections", srv.MetricsURL(), min(3, runtime.NumCPU())))
	one.WaitLinger(t, 10*time.Second)
	two.WaitLinger(t, 10*time.Second)
	// The connections ended with the runs; a second later (LowerAfter) the
	// server is back on one processor.
	eventually(t, 5*time.Second, want("bp-server after its connections ended", srv.MetricsURL(), 1))

	// The user's GOMAXPROCS wins.
	pinned := startServerEnv(t, []string{"GOMAXPROCS=2"}, "--log-interval", "0")
	if got := procs(pinned.MetricsURL()); got != 2 {
		t.Fatalf("idle bp-server with GOMAXPROCS=2 runs on %d processors, want 2", got)
	}
	all := append(append([]string{}, clientDefaults...), "--metrics-addr", "127.0.0.1:0", "--linger", "2s", "--target", pinned.TCPURL(), "--rate", "20", "--payload-size", "1KiB", "--duration", "1s")
	p := startProc(t, "bp-client", []string{"GOMAXPROCS=2"}, all...)
	addr, _ := p.WaitLog(t, "serving metrics", 20*time.Second)["addr"].(string)
	eventually(t, 5*time.Second, want("bp-client of 1 connection with GOMAXPROCS=2", "http://"+addr+"/metrics", 2))
}
