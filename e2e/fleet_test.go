package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/report"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// fleetQueries are the fleet row's queries as docs/FLEET.md gives them
// (the dashboard's own are added, dashboardFleetQueries): each must
// return data for a fleet scraped by a real Prometheus.
var fleetQueries = []string{
	`count(bp_fleet_info{fleet="e2e"})`,
	`max(bp_fleet_instances)`,
	`sum(bp_verdict_outcome{outcome="blocked"})`,
	`sum(bp_verdict_absorbed_bytes)`,
	`topk(3, bp_verdict_absorbed_bytes)`,
	`quantile(0.5, bp_verdict_block_delay_seconds)`,
	`max(bp_verdict_block_delay_seconds) - min(bp_verdict_block_delay_seconds)`,
	`min(bp_verdict_server_stopped_at_seconds)`,
}

// TestFleetOneMachine: four bp-clients as an Indexed Job's pods would be
// (JOB_COMPLETION_INDEX 0..3, one --start-at) against one server that
// pauses reading. They start within 100 ms of each other, split the
// fleet's 10 connections 3, 3, 2, 2, and bp-client merge gives totals
// that are the instances' sums and the server's count to the byte, and a
// fleet verdict of blocked. With Prometheus installed, it scrapes them and
// every fleet query returns data.
//
// Not parallel: four clients that must wake within 100 ms of each other
// cannot share two cores with the full-speed tests.
func TestFleetOneMachine(t *testing.T) {
	const n = 4
	srv := startServer(t, "--pause-after", "1s", "--pause-for", "3s", "--rcvbuf", "64KiB")
	startAt := time.Now().Add(3 * time.Second)
	var clients []*Client
	for i := range n {
		args := append(append([]string{}, clientDefaults...), "--metrics-addr", "127.0.0.1:0", "--linger", "15s",
			"--target", srv.TCPURL(), "--duration", "5s", "--rate", "160", "--payload-size", "16KiB", "--sndbuf", "64KiB",
			"--instances", fmt.Sprint(n), "--connections", "10", "--fleet", "e2e",
			"--start-at", fmt.Sprintf("%d.%09d", startAt.Unix(), startAt.Nanosecond()))
		p := startProc(t, "bp-client", []string{fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i)}, args...)
		l := p.WaitLog(t, "serving metrics", 20*time.Second)
		clients = append(clients, &Client{Proc: p, MetricsURL: "http://" + l["addr"].(string) + "/metrics"})
	}
	var first, last time.Time
	var starts []string
	for i, c := range clients {
		l := c.WaitLog(t, "fleet run starting", 10*time.Second)
		at, err := time.Parse(time.RFC3339Nano, l["started_at"].(string))
		if err != nil {
			t.Fatalf("instance %d: started_at %v: %v", i, l["started_at"], err)
		}
		starts = append(starts, at.Format("15:04:05.000000"))
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	if spread := last.Sub(first); spread > 100*time.Millisecond || first.Before(startAt) {
		t.Errorf("the fleet started over %s (at %v, --start-at %s), want within 100ms, not before --start-at", spread, starts, startAt.Format("15:04:05.000000"))
	}
	var prom string
	if _, err := exec.LookPath("prometheus"); err == nil {
		prom = startFleetPrometheus(t, clients)
	} else {
		t.Log("prometheus not installed (apt-get install prometheus): fleet queries not checked")
	}
	paused := pauseInPipe(t, srv, clients, startAt)
	for _, c := range clients {
		c.WaitLinger(t, 40*time.Second)
	}
	if prom != "" {
		checkFleetQueries(t, prom, append(slices.Clone(fleetQueries), dashboardFleetQueries(t)...))
	}
	checkFleetMerge(t, srv, clients, paused)
}

// pauseInPipe is what the fleet had in the pipe in the middle of the
// server's pause (from 1 s to 4 s into the run): every client's written
// bytes less what the server read, from the two ends' own counts, one
// scrape each while nothing moves. -1 when the pause was over before the
// test could look (a slow Prometheus start).
func pauseInPipe(t *testing.T, srv *Server, clients []*Client, startAt time.Time) int64 {
	t.Helper()
	if time.Until(startAt.Add(3500*time.Millisecond)) <= 0 {
		t.Log("the server's pause was over before it could be scraped: the fleet peak not checked against it")
		return -1
	}
	time.Sleep(time.Until(startAt.Add(2500 * time.Millisecond)))
	var written float64
	for _, c := range clients {
		written += scrape(t, c.MetricsURL).Sum("bp_bytes_written_total")
	}
	return int64(written - scrape(t, srv.MetricsURL()).Sum("bp_bytes_read_total"))
}

// checkFleetMerge: each instance's share and report, and the merge's
// totals against the sum of the instances and the server's count.
func checkFleetMerge(t *testing.T, srv *Server, clients []*Client, paused int64) {
	t.Helper()
	dir := t.TempDir()
	var files []string
	var sumWritten, sumAcked, sumPeaks, mostPeak int64
	wantConns := []int{3, 3, 2, 2}
	for i, c := range clients {
		s, code := c.Finish(t, 30*time.Second)
		if code != 0 || s.Fleet == nil || s.Fleet.Instance != i || s.Fleet.Instances != len(clients) || s.Fleet.Name != "e2e" {
			t.Fatalf("instance %d: exit %d, fleet %+v; stderr:\n%s", i, code, s.Fleet, lastLines(c.Stderr(), 20))
		}
		if s.Connections != wantConns[i] {
			t.Errorf("instance %d made %d connections, want %d (10 split over 4, the first two taking one more)", i, s.Connections, wantConns[i])
		}
		sumWritten += s.BytesWritten
		sumAcked += s.BytesAcked
		sumPeaks += s.PeakBytesInPipe
		mostPeak = max(mostPeak, s.PeakBytesInPipe)
		path := filepath.Join(dir, fmt.Sprintf("instance-%d.json", i))
		// As kubectl logs gives it: the logs around the report.
		if err := os.WriteFile(path, []byte(c.Stderr()+c.Stdout()), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	page := filepath.Join(t.TempDir(), "fleet.html")
	out, err := exec.Command(binary("bp-client"), append([]string{"merge", "--output", "json", "--report-html", page}, files...)...).Output()
	if err != nil {
		t.Fatalf("bp-client merge: %v", err)
	}
	var fs report.FleetSummary
	if err := json.Unmarshal(out, &fs); err != nil {
		t.Fatalf("merged report: %v\n%s", err, out)
	}
	serverRead := int64(scrape(t, srv.MetricsURL()).Value(t, "bp_bytes_read_total", "protocol", "tcp"))
	switch {
	case fs.BytesWritten != sumWritten || fs.BytesAcked != sumAcked:
		t.Errorf("merged written %d, acked %d; the instances' sums %d, %d", fs.BytesWritten, fs.BytesAcked, sumWritten, sumAcked)
	case fs.BytesAcked != serverRead || fs.BytesWritten != serverRead:
		t.Errorf("merged written %d, acked %d; the server read %d", fs.BytesWritten, fs.BytesAcked, serverRead)
	case fs.Connections != 10 || len(fs.Instances) != len(clients):
		t.Errorf("merged %d connections, %d instances; want 10, %d", fs.Connections, len(fs.Instances), len(clients))
	}
	t.Logf("merged: %d connections, written %d, acked %d, the server read %d; %s", fs.Connections, fs.BytesWritten, fs.BytesAcked, serverRead, fs.FleetVerdict.Words())
	if fs.Verdict == nil || fs.Verdict.Outcome != verdict.OutcomeBlocked || fs.FleetVerdict.Outcomes[verdict.OutcomeBlocked] != len(clients) {
		t.Errorf("fleet verdict %+v, want blocked on every instance", fs.FleetVerdict)
	}
	// The fleet's page: the instances' timelines summed, ending on the
	// fleet's totals (the instances ran without --report-html, but their
	// JSON reports carry their timelines).
	if fs.Timeline == nil || len(fs.Timeline.Points) == 0 {
		t.Error("the merged report has no timeline")
	} else if last := fs.Timeline.Points[len(fs.Timeline.Points)-1]; last.BytesWritten != fs.BytesWritten || last.BytesAcked != fs.BytesAcked {
		t.Errorf("the fleet timeline ends at %d written, %d acked; the fleet's totals %d, %d", last.BytesWritten, last.BytesAcked, fs.BytesWritten, fs.BytesAcked)
	}
	checkFleetPeak(t, fs, sumPeaks, mostPeak, paused)
	if b, err := os.ReadFile(page); err != nil || !strings.Contains(string(b), "instances blocked") {
		t.Errorf("merge --report-html: %v (%d bytes)", err, len(b))
	}
	text, err := exec.Command(binary("bp-client"), append([]string{"merge"}, files...)...).Output()
	if err != nil || !strings.Contains(string(text), fmt.Sprintf("%d of %d instances blocked", len(clients), len(clients))) ||
		!strings.Contains(string(text), "fleet peak       "+config.HumanBytes(float64(fs.PeakBytesInPipe))+" at ") {
		t.Errorf("merged text report (%v):\n%s", err, text)
	}
	// The instances ran straight to the server, and each said so: the
	// merge names the server as the clients' peer, as they did, not "the
	// next hop; the server did not say which".
	if v := fs.Verdict; v == nil || v.Via == nil || len(*v.Via) != 0 || v.AddressRewritten == nil || *v.AddressRewritten {
		t.Errorf("merged verdict %+v: want the path known, with no bp-relay and no address rewritten", v)
	}
	if want := "the kernel of the peer (the server: it sees every connection from its client's own address"; !strings.Contains(string(text), want) {
		t.Errorf("merged text report lacks %q:\n%s", want, text)
	}
}

// checkFleetPeak: the merged peak in the pipe is the fleet's own, from the
// instances' timelines: between the largest instance's peak and the sum
// of their peaks (the bound it reports, which their peaks, at moments of
// their own, need not reach together), and at least what the fleet held
// in the server's pause by the clients' and the server's counts (paused;
// less a payload write per connection, which a client counts when it
// returns).
func checkFleetPeak(t *testing.T, fs report.FleetSummary, sumPeaks, mostPeak, paused int64) {
	t.Helper()
	slack := int64(fs.Connections * fs.PayloadSize)
	switch {
	case fs.PeakInPipeSource != report.PeakFromTimeline:
		t.Errorf("peak in the pipe from %q, want %q (the instances kept timelines)", fs.PeakInPipeSource, report.PeakFromTimeline)
	case fs.PeakInPipeUpperBoundBytes != sumPeaks:
		t.Errorf("upper bound %d, the instances' peaks add up to %d", fs.PeakInPipeUpperBoundBytes, sumPeaks)
	case fs.PeakBytesInPipe < mostPeak || fs.PeakBytesInPipe > sumPeaks:
		t.Errorf("fleet peak %d, want between the largest instance's peak %d and their sum %d", fs.PeakBytesInPipe, mostPeak, sumPeaks)
	case paused >= 0 && fs.PeakBytesInPipe < paused-slack:
		t.Errorf("fleet peak %d, below the %d in the pipe in the server's pause (clients' written - server's read)", fs.PeakBytesInPipe, paused)
	}
	at := "an instance's own peak"
	if fs.PeakInPipeAtSeconds != nil {
		at = fmt.Sprintf("%.1f s", *fs.PeakInPipeAtSeconds)
	}
	t.Logf("fleet peak in the pipe %d at %s; in the pause %d (clients' written - server's read); the instances' peaks add up to %d, the largest %d",
		fs.PeakBytesInPipe, at, paused, sumPeaks, mostPeak)
}

// startFleetPrometheus runs Debian's Prometheus scraping the clients every
// 500 ms and returns its URL.
func startFleetPrometheus(t *testing.T, clients []*Client) string {
	t.Helper()
	dir := t.TempDir()
	var targets []string
	for _, c := range clients {
		targets = append(targets, fmt.Sprintf("%q", strings.TrimSuffix(strings.TrimPrefix(c.MetricsURL, "http://"), "/metrics")))
	}
	conf := fmt.Sprintf("global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\nscrape_configs:\n  - job_name: bp-client\n    static_configs:\n      - targets: [%s]\n        labels: {hop: client}\n", strings.Join(targets, ", "))
	confPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command("prometheus", "--config.file", confPath, "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", addr, "--log.level", "warn")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	u := "http://" + addr
	eventually(t, 30*time.Second, func() string {
		resp, err := http.Get(u + "/-/ready")
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return resp.Status
		}
		return ""
	})
	return u
}

// checkFleetQueries: every fleet query returns data, and the counts of
// instances and of blocked ones are the whole fleet.
func checkFleetQueries(t *testing.T, prom string, queries []string) {
	t.Helper()
	for _, q := range queries {
		eventually(t, 10*time.Second, func() string {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", prom+"/api/v1/query?query="+url.QueryEscape(q), nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err.Error()
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var ans struct {
				Status string
				Data   struct {
					Result []struct {
						Value [2]any `json:"value"`
					} `json:"result"`
				} `json:"data"`
			}
			if err := json.Unmarshal(body, &ans); err != nil || ans.Status != "success" || len(ans.Data.Result) == 0 {
				return fmt.Sprintf("%s: no data: %.300s", q, body)
			}
			whole := q == `sum(bp_verdict_outcome{outcome="blocked"})` || q == `count(bp_fleet_info{fleet="e2e"})`
			if whole && ans.Data.Result[0].Value[1] != "4" {
				return fmt.Sprintf("%s = %v, want 4", q, ans.Data.Result[0].Value[1])
			}
			t.Logf("%s = %v", q, ans.Data.Result[0].Value[1])
			return ""
		})
	}
}

// dashboardFleetQueries are the dashboard's queries of the fleet metrics
// (bp_verdict_*, bp_fleet_*), $__rate_interval at four scrape intervals:
// the fleet row's panels, whoever builds them. A query with other
// variables is left out, and said.
func dashboardFleetQueries(t *testing.T) []string {
	t.Helper()
	d, _ := loadDashboard(t)
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, "bp_verdict_") && !strings.Contains(tg.Expr, "bp_fleet_") {
				continue
			}
			q := strings.ReplaceAll(tg.Expr, "$__rate_interval", "2s")
			if strings.Contains(q, "$") {
				t.Logf("panel %s: %q has a variable this test does not set: not checked", p.Title, tg.Expr)
				continue
			}
			out = append(out, q)
		}
	}
	t.Logf("%d fleet queries from the dashboard", len(out))
	return out
}
