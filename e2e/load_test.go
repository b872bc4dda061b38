package e2e

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// processRSS is a process's resident memory in bytes (VmRSS in
// /proc/PID/status).
func processRSS(t testing.TB, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// timedScrape scrapes url and says how long the whole request took.
func timedScrape(t testing.TB, url string) (Scrape, time.Duration) {
	t.Helper()
	began := time.Now()
	m := scrape(t, url)
	return m, time.Since(began)
}

// loadFigures is what a slow-connections run measured at the server while
// every connection was open.
type loadFigures struct {
	Conns                int
	BaseRSS, PeakRSS     int64   // bytes, before the run and the most seen during it
	BaseGoroutines, Peak float64 // go_goroutines before and the most seen during it
	MaxScrape            time.Duration
	Scrapes              int
	scrapeTimes          []time.Duration
	Written, Acked       int64 // the client's report
}

// RSSPerConn is the server's memory per open connection.
func (f loadFigures) RSSPerConn() float64 {
	return float64(f.PeakRSS-f.BaseRSS) / float64(f.Conns)
}

// GoroutinesPerConn is the server's goroutines per open connection.
func (f loadFigures) GoroutinesPerConn() float64 {
	return (f.Peak - f.BaseGoroutines) / float64(f.Conns)
}

// runSlowLoad opens conns TCP connections from one client to one server,
// each writing one 1 KiB message a second for dur, and measures the
// server while they are all open: its resident memory, its goroutines and
// how long a /metrics scrape takes. It fails the test unless every
// connection was accepted, served to its end and acknowledged in full.
func runSlowLoad(t testing.TB, conns int, dur time.Duration) loadFigures {
	t.Helper()
	raiseFileLimit(t, uint64(conns)+500)
	srv := startServer(t, "--log-interval", "0")
	f := loadFigures{Conns: conns}
	base := scrape(t, srv.MetricsURL())
	f.BaseGoroutines = base.Value(t, "go_goroutines")
	f.BaseRSS = processRSS(t, srv.Pid())
	c := startClient(t, "--target", srv.TCPURL(), "--connections", strconv.Itoa(conns),
		"--rate", "1", "--payload-size", "1KiB", "--duration", dur.String(), "--sample-interval", "0")
	began := time.Now()
	allOpen := false
	for !c.Exited() && len(c.Logs("lingering so scrapers see the final values")) == 0 && time.Since(began) < dur+2*time.Minute {
		m, took := timedScrape(t, srv.MetricsURL())
		open := m.Value(t, "bp_connections", "protocol", "tcp")
		if int(open) == conns {
			// Every connection is open: this is the load being measured.
			allOpen = true
			f.Scrapes++
			f.MaxScrape = max(f.MaxScrape, took)
			f.scrapeTimes = append(f.scrapeTimes, took)
			f.Peak = max(f.Peak, m.Value(t, "go_goroutines"))
			f.PeakRSS = max(f.PeakRSS, processRSS(t, srv.Pid()))
		}
		time.Sleep(250 * time.Millisecond)
	}
	c.WaitLinger(t, dur+2*time.Minute)
	sum, code := c.Finish(t, 30*time.Second)
	if code != 0 || !sum.Completed || sum.FailedConns != 0 {
		t.Fatalf("client exit %d, completed %v, %d connections failed: %s", code, sum.Completed, sum.FailedConns, sum.Error)
	}
	if !allOpen {
		t.Fatalf("the server never had all %d connections open at once", conns)
	}
	f.Written, f.Acked = sum.BytesWritten, sum.BytesAcked
	// Every connection wrote about one message a second for dur.
	if min := int64(conns) * 1024 * int64(dur/time.Second) / 2; sum.BytesWritten < min || sum.BytesAcked != sum.BytesWritten {
		t.Errorf("client wrote %d bytes (want at least %d), acked %d", sum.BytesWritten, min, sum.BytesAcked)
	}
	eventually(t, 30*time.Second, func() string {
		m := scrape(t, srv.MetricsURL())
		if got := m.Value(t, "bp_connections_opened_total", "protocol", "tcp"); int(got) != conns {
			return fmt.Sprintf("server opened %v connections, want %d", got, conns)
		}
		if got := m.Value(t, "bp_bytes_read_total", "protocol", "tcp"); int64(got) != sum.BytesWritten {
			return fmt.Sprintf("server read %v bytes, client wrote %d", got, sum.BytesWritten)
		}
		if got := m.Sum("bp_connection_errors_total"); got != 0 {
			return fmt.Sprintf("server counted %v connection errors", got)
		}
		if got := m.Value(t, "bp_connections", "protocol", "tcp"); got != 0 {
			return fmt.Sprintf("server still has %v connections open", got)
		}
		return ""
	})
	return f
}

// MedianScrape is the median /metrics scrape time with every connection
// open.
func (f loadFigures) MedianScrape() time.Duration {
	if len(f.scrapeTimes) == 0 {
		return 0
	}
	s := slices.Clone(f.scrapeTimes)
	slices.Sort(s)
	return s[len(s)/2]
}

func (f loadFigures) String() string {
	return fmt.Sprintf("%d connections: server RSS %.1f MiB -> %.1f MiB (%.1f KiB per connection), goroutines %.0f -> %.0f (%.2f per connection), /metrics scrape median %s, slowest %s of %d",
		f.Conns, float64(f.BaseRSS)/(1<<20), float64(f.PeakRSS)/(1<<20), f.RSSPerConn()/1024,
		f.BaseGoroutines, f.Peak, f.GoroutinesPerConn(), f.MedianScrape().Round(time.Millisecond), f.MaxScrape.Round(time.Millisecond), f.Scrapes)
}

// TestSlowConnections: 500 connections writing slowly for 3 s are all
// accepted and served, and the server's memory and goroutines per
// connection stay within bounds. The full 10,000 × 30 s run is
// BenchmarkSlowConnections.
func TestSlowConnections(t *testing.T) {
	f := runSlowLoad(t, 500, 3*time.Second)
	t.Log(f)
	// Bounds with room: a connection costs a 64 KiB read buffer (mostly
	// untouched, so not resident) and a few KiB of state, and 2 goroutines
	// (reader, acker) plus the one serving it.
	// (The race detector's shadow memory multiplies it.)
	limit := 256.0 * 1024
	if raceEnabled {
		limit *= 8
	}
	if perConn := f.RSSPerConn(); perConn > limit {
		t.Errorf("server memory %.0f KiB per connection, want at most %.0f KiB", perConn/1024, limit/1024)
	}
	if g := f.GoroutinesPerConn(); g > 5 {
		t.Errorf("server runs %.2f goroutines per connection, want at most 5", g)
	}
}

// BenchmarkSlowConnections is the full load run: 10,000 connections (set
// BP_LOAD_CONNECTIONS for another number) to one server, each writing
// 1 KiB a second for 30 s (BP_LOAD_DURATION). It runs only when
// BP_LOAD=1, without -race:
//
//	BP_LOAD=1 go test ./e2e -run '^$' -bench SlowConnections -benchtime 1x -timeout 10m
//
// It reports the server's memory and goroutines per connection and the
// slowest /metrics scrape; docs/BENCHMARKS.md has the figures.
func BenchmarkSlowConnections(b *testing.B) {
	if os.Getenv("BP_LOAD") != "1" {
		b.Skip("set BP_LOAD=1 to run the 10,000-connection load run")
	}
	conns, dur := 10000, 30*time.Second
	if v, err := strconv.Atoi(os.Getenv("BP_LOAD_CONNECTIONS")); err == nil && v > 0 {
		conns = v
	}
	if v, err := time.ParseDuration(os.Getenv("BP_LOAD_DURATION")); err == nil && v > 0 {
		dur = v
	}
	for range b.N {
		f := runSlowLoad(b, conns, dur)
		b.Log(f)
		b.ReportMetric(f.RSSPerConn()/1024, "KiB-RSS/conn")
		b.ReportMetric(f.GoroutinesPerConn(), "goroutines/conn")
		b.ReportMetric(float64(f.MaxScrape.Milliseconds()), "ms-max-scrape")
		b.ReportMetric(float64(f.MedianScrape().Milliseconds()), "ms-median-scrape")
		b.ReportMetric(float64(f.PeakRSS)/(1<<20), "MiB-RSS")
	}
}
