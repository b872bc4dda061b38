package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/lab"
)

// promQuerier is a Prometheus to ask: the observed lab's, or one a
// topology test starts (startPrometheus).
type promQuerier interface {
	Query(ctx context.Context, path string) ([]byte, error)
}

// dashboardRow is a row and the panels under it.
type dashboardRow struct {
	dashboardPanel
	panels []dashboardPanel
}

// rows groups the dashboard's panels under their rows.
func (d dashboard) rows() []dashboardRow {
	var out []dashboardRow
	for _, p := range d.Panels {
		if p.Type == "row" {
			out = append(out, dashboardRow{dashboardPanel: p})
		} else if len(out) > 0 {
			out[len(out)-1].panels = append(out[len(out)-1].panels, p)
		}
	}
	return out
}

// labelValues is a query variable's label_values(metric{...}, label).
var labelValues = regexp.MustCompile(`^label_values\((.+), *([a-z_]+)\)$`)

// fillVars puts Grafana's values in a query: all hops and protocols, the
// row's repeated variable at value, $__rate_interval at four scrape
// intervals of 1 s.
func fillVars(expr, repeat, value string) string {
	if repeat != "" {
		expr = strings.ReplaceAll(expr, "$"+repeat, value)
	}
	return strings.NewReplacer("$__rate_interval", "4s", "$hop", ".*", "$protocol", ".*").Replace(expr)
}

// varValues asks Prometheus for the values of every query variable, as
// Grafana would with All selected.
func varValues(t *testing.T, q promQuerier, d dashboard, from time.Time) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, v := range d.Templating.List {
		m := labelValues.FindStringSubmatch(v.Query)
		if v.Type != "query" || m == nil {
			continue
		}
		res, err := promRange(t, q, fmt.Sprintf("group by (%s) (%s)", m[2], fillVars(m[1], "", "")), from)
		if err != nil {
			t.Fatalf("variable %s: %v", v.Name, err)
		}
		for _, s := range res {
			out[v.Name] = append(out[v.Name], s.Metric[m[2]])
		}
		sort.Strings(out[v.Name])
	}
	return out
}

// checkDashboardData runs every query of the dashboard against q as Grafana
// would, each repeated row once per value of its variable, and checks that
// none errs, that the hidden variables find the hops of each kind the
// topology has (want: variable -> its values), that every panel of a row
// that applies returns data (in a row repeated per bp binary, for at least
// one hop: a writer's panel stays empty on a reader), and that the path's
// bytes/s show every hop that runs a bp binary or HAProxy.
func checkDashboardData(t *testing.T, q promQuerier, from time.Time, want map[string][]string) {
	t.Helper()
	d, _ := loadDashboard(t)
	vals := varValues(t, q, d, from)
	for name, w := range want {
		if got := strings.Join(vals[name], ","); got != strings.Join(w, ",") {
			t.Errorf("variable %s: %q, want %q", name, got, w)
		}
	}
	fleet := len(vals["fleet"]) > 0
	streams := len(vals["stream_protocol"]) > 0
	for _, r := range d.rows() {
		if strings.HasPrefix(r.Title, "Fleet") && !fleet {
			t.Logf("row %q: no bp_fleet_info scraped (no fleet in this topology, or the fleet metrics are not merged yet): queries run, data not required", r.Title)
		}
		if strings.HasPrefix(r.Title, "Stream layer") && !streams {
			t.Logf("row %q: no bp_stream_* scraped (no HTTP/2 or gRPC streams in this topology): queries run, data not required", r.Title)
		}
		values := []string{""}
		if r.Repeat != "" {
			values = vals[r.Repeat]
		}
		for _, p := range r.panels {
			some := false
			for _, v := range values {
				for _, tg := range p.Targets {
					expr := fillVars(tg.Expr, r.Repeat, v)
					res, err := promRange(t, q, expr, from)
					if err != nil {
						t.Errorf("panel %q/%s (%s): %v", p.Title, tg.RefID, v, err)
					}
					some = some || len(res) > 0
				}
			}
			required := len(values) > 0 && (fleet || !strings.HasPrefix(r.Title, "Fleet")) &&
				(streams || !strings.HasPrefix(r.Title, "Stream layer"))
			if required && !some {
				t.Errorf("panel %q (row %q, values %v): no data", p.Title, r.Title, values)
			}
		}
	}
	checkEntering(t, q, d, from, append(append([]string{}, vals["bp_hop"]...), vals["lb_hop"]...))
}

// checkEntering checks that "Bytes/s entering each hop" has a series above
// 0 for every hop of hops.
func checkEntering(t *testing.T, q promQuerier, d dashboard, from time.Time, hops []string) {
	t.Helper()
	seen := map[string]float64{}
	for _, p := range d.Panels {
		if p.Title != "Bytes/s entering each hop" {
			continue
		}
		for _, tg := range p.Targets {
			res, err := promRange(t, q, fillVars(tg.Expr, "", ""), from)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range res {
				seen[s.Metric["hop"]] = max(seen[s.Metric["hop"]], s.max())
			}
		}
	}
	for _, h := range hops {
		if seen[h] <= 0 {
			t.Errorf("bytes/s entering each hop: hop %s never above 0 (%v)", h, seen)
		}
	}
}

// startPrometheus starts Prometheus on a free port with its own data
// directory, scraping targets with their hop label, and waits until it is
// ready; it is killed, by pid, when the test ends.
func startPrometheus(t *testing.T, targets map[string]string) promQuerier {
	t.Helper()
	bin := needTool(t, "prometheus", "prometheus")
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 800ms\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: go-backpressure\n    static_configs:\n")
	hops := make([]string, 0, len(targets))
	for h := range targets {
		hops = append(hops, h)
	}
	sort.Strings(hops)
	for _, h := range hops {
		fmt.Fprintf(&b, "      - targets: [%q]\n        labels:\n          hop: %s\n", targets[h], h)
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--config.file", conf, "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", addr, "--log.level", "warn")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// The observed lab's client for Prometheus's API, on this one.
	p := &lab.Observatory{PrometheusURL: "http://" + addr}
	eventually(t, 30*time.Second, func() string {
		if _, err := p.Query(context.Background(), "/-/ready"); err != nil {
			return err.Error()
		}
		return ""
	})
	return p
}

// hostPort is a /metrics URL's host:port.
func hostPort(metricsURL string) string {
	return strings.TrimSuffix(strings.TrimPrefix(metricsURL, "http://"), "/metrics")
}

// runTopology runs bp-client against target (the first hop of a path the
// caller started; the server pauses), with Prometheus scraping the client
// and targets, and once the run is over and scraped checks the dashboard
// against it.
func runTopology(t *testing.T, target string, targets map[string]string, want map[string][]string) {
	t.Helper()
	start := time.Now()
	c := startClient(t, "--target", target, "--duration", "7s", "--rate", "200", "--payload-size", "4096",
		"--sndbuf", "128KiB", "--linger", "60s")
	targets["client"] = hostPort(c.MetricsURL)
	prom := startPrometheus(t, targets)
	c.WaitLinger(t, 60*time.Second)
	time.Sleep(3 * time.Second) // the run's last values scraped
	checkDashboardData(t, prom, start, want)
	// Keep the report's verdict: the server's stop reached the client.
	rep, _ := c.Finish(t, 10*time.Second)
	if rep.Verdict == nil {
		t.Errorf("no verdict in the report: %+v", rep)
	}
}

// TestDashboardClientServer is the Cloud Foundry shape: bp-client straight
// to bp-server, Prometheus scraping two targets, hop=client and hop=server.
// Every panel that applies has data, the relay, HAProxy and sidecar rows
// repeat over nothing.
func TestDashboardClientServer(t *testing.T) {
	t.Parallel()
	needTool(t, "prometheus", "prometheus")
	srv := startServer(t, "--pause-after", "2s", "--pause-for", "3s", "--rcvbuf", "128KiB")
	runTopology(t, srv.WSURL(), map[string]string{"server": hostPort(srv.MetricsURL())}, map[string][]string{
		"hop": {"client", "server"}, "bp_hop": {"client", "server"}, "relay_hop": nil, "lb_hop": nil, "sidecar_hop": nil,
	})
}

// TestDashboardTwoHops is bp-client -> two bp-relays -> bp-server, hops
// named as a user might (edge, mesh): the relay row repeats for both.
func TestDashboardTwoHops(t *testing.T) {
	t.Parallel()
	needTool(t, "prometheus", "prometheus")
	srv := startServer(t, "--pause-after", "2s", "--pause-for", "3s", "--rcvbuf", "128KiB")
	mesh := startRelay(t, srv.WSURL(), "--buffer", "256KiB")
	edge := startRelay(t, mesh.Target("websocket"), "--buffer", "256KiB")
	runTopology(t, edge.Target("websocket"), map[string]string{
		"server": hostPort(srv.MetricsURL()), "mesh": hostPort(mesh.MetricsURL()), "edge": hostPort(edge.MetricsURL()),
	}, map[string][]string{
		"hop": {"client", "edge", "mesh", "server"}, "bp_hop": {"client", "edge", "mesh", "server"},
		"relay_hop": {"edge", "mesh"}, "lb_hop": nil, "sidecar_hop": nil,
	})
}

// TestDashboardGRPC is bp-client to bp-server over gRPC: the stream-layer
// row applies (stream_protocol finds grpc) and every one of its panels has
// data, on both hops.
func TestDashboardGRPC(t *testing.T) {
	t.Parallel()
	needTool(t, "prometheus", "prometheus")
	srv := startServer(t, "--pause-after", "2s", "--pause-for", "3s", "--rcvbuf", "128KiB")
	runTopology(t, srv.grpcTarget(), map[string]string{"server": hostPort(srv.MetricsURL())}, map[string][]string{
		"hop": {"client", "server"}, "bp_hop": {"client", "server"}, "stream_protocol": {"grpc"},
		"relay_hop": nil, "lb_hop": nil, "sidecar_hop": nil,
	})
}
