package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/lab"
)

// promSeries is one series of a Prometheus query_range answer.
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
}

// max is the largest value of the series (NaN points skipped).
func (s promSeries) max() float64 {
	m := -1.0
	for _, v := range s.Values {
		str, _ := v[1].(string)
		f, err := strconv.ParseFloat(str, 64)
		if err == nil && f == f && f > m {
			m = f
		}
	}
	return m
}

// promRange runs a range query over [from, now] at 1 s steps.
func promRange(t *testing.T, ob promQuerier, expr string, from time.Time) ([]promSeries, error) {
	t.Helper()
	q := url.Values{}
	q.Set("query", expr)
	q.Set("start", strconv.FormatInt(from.Unix(), 10))
	q.Set("end", strconv.FormatInt(time.Now().Unix(), 10))
	q.Set("step", "1")
	body, err := ob.Query(context.Background(), "/api/v1/query_range?"+q.Encode())
	if err != nil {
		return nil, err
	}
	var ans struct {
		Status string `json:"status"`
		Data   struct {
			Result []promSeries `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || ans.Status != "success" {
		return nil, fmt.Errorf("answer %.300s: %v", body, err)
	}
	return ans.Data.Result, nil
}

// TestLabObserve runs the observed lab (make lab-observe: docker-compose's
// topology natively, from the same deploy/ files) with a short pause
// schedule, and checks through Prometheus's HTTP API that every hop's target
// is up, that the backpressure shows (the server pauses, the client's writes
// block, bytes move through every hop), and that every query of the Grafana
// dashboard runs and returns data.
func TestLabObserve(t *testing.T) {
	t.Parallel()
	needTool(t, "haproxy", "haproxy")
	needTool(t, "prometheus", "prometheus")
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ob, err := lab.Observe(ctx, lab.ObserveOptions{
		Bin: binDir, Deploy: labDeploy, Dir: t.TempDir(),
		Server:         []string{"--pause-after", "2s", "--pause-for", "4s", "--rcvbuf", "128KiB"},
		Relay:          []string{"--buffer", "1MiB"},
		Client:         []string{"--loop", "--loop-pause", "1s", "--duration", "8s", "--rate", "100", "--sndbuf", "128KiB"},
		PrometheusAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		ScrapeInterval: time.Second,
	})
	if err != nil {
		t.Fatalf("lab-observe: %v", err)
	}
	t.Cleanup(ob.Stop)

	// Every hop's target is up, with its hop label.
	eventually(t, 30*time.Second, func() string {
		body, err := ob.Query(ctx, "/api/v1/targets")
		if err != nil {
			return err.Error()
		}
		var ans struct {
			Data struct {
				ActiveTargets []struct {
					Labels    map[string]string `json:"labels"`
					Health    string            `json:"health"`
					LastError string            `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &ans); err != nil {
			return err.Error()
		}
		var up []string
		for _, tg := range ans.Data.ActiveTargets {
			if tg.Health == "up" {
				up = append(up, tg.Labels["job"]+"/"+tg.Labels["hop"])
			}
		}
		sort.Strings(up)
		// bp-sockets, beside HAProxy, is a target of its own with hop=haproxy.
		if got := strings.Join(up, ","); got != "bp-sockets/haproxy,go-backpressure/client,go-backpressure/relay,go-backpressure/server,haproxy/haproxy" {
			return fmt.Sprintf("targets up: %q; all: %+v", got, ans.Data.ActiveTargets)
		}
		return ""
	})

	// Every run's report is kept (make lab-observe prints them too): the
	// first 8 s run ends with one, verdict included.
	eventually(t, 40*time.Second, func() string {
		b, _ := os.ReadFile(ob.Reports)
		if !strings.Contains(string(b), "bp-client report:") || !strings.Contains(string(b), "verdict") {
			return fmt.Sprintf("%s holds no report yet: %q", ob.Reports, b)
		}
		return ""
	})

	// Wait for one pause to be seen end to end: the server paused, the
	// client's writes blocked, the server read again.
	seen := map[string]bool{}
	conds := map[string]string{
		"server paused":          `sum(bp_reads_paused{hop="server"})`,
		"client writes blocked":  `sum(rate(bp_writes_blocked_seconds_total{hop="client"}[3s]))`,
		"relay buffer held data": `sum(bp_relay_buffered_bytes{hop="relay"})`,
		"haproxy took bytes in":  `sum(rate(haproxy_frontend_bytes_in_total{hop="haproxy",proxy="bp_in"}[3s]))`,
		"server read bytes":      `sum(rate(bp_bytes_read_total{hop="server"}[3s]))`,
	}
	eventually(t, 60*time.Second, func() string {
		if name := ob.Exited(); name != "" {
			t.Fatalf("%s exited; log %s", name, ob.Log(name))
		}
		var missing []string
		for name, expr := range conds {
			if seen[name] {
				continue
			}
			res, err := promRange(t, ob, expr, start)
			if err != nil {
				t.Fatalf("%s: %v", expr, err)
			}
			if len(res) > 0 && res[0].max() > 0 {
				seen[name] = true
				continue
			}
			missing = append(missing, name)
		}
		if len(missing) > 0 {
			return "not seen yet: " + strings.Join(missing, ", ")
		}
		return ""
	})

	// Every query of the dashboard, as Grafana would send it (with
	// $__rate_interval at four scrape intervals), runs; every panel that
	// applies returns data; the rows repeat over the hops of their kind.
	checkDashboardData(t, ob, start, map[string][]string{
		"hop": {"client", "haproxy", "relay", "server"}, "bp_hop": {"client", "relay", "server"},
		"relay_hop": {"relay"}, "lb_hop": {"haproxy"}, "sidecar_hop": {"haproxy"},
	})

	// The side-by-side panels show every hop.
	res, err := promRange(t, ob, `sum by (hop) (rate(bp_writes_blocked_seconds_total[4s]))`, start)
	if err != nil {
		t.Fatal(err)
	}
	maxBlocked := map[string]float64{}
	for _, s := range res {
		maxBlocked[s.Metric["hop"]] = s.max()
	}
	if maxBlocked["client"] <= 0 {
		t.Errorf("writes blocked per hop: client never blocked: %v", maxBlocked)
	}
	t.Logf("observed %s: blocked share max per hop %v", time.Since(start).Round(time.Second), maxBlocked)
}
