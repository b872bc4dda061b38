package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

// dashboardPath is the Grafana dashboard, seen from this package.
const dashboardPath = "../deploy/grafana/dashboards/go-backpressure.json"

// dashboard is the part of Grafana's dashboard JSON the tests read.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashboardPanel `json:"panels"`
}

type dashboardPanel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Repeat  string                   `json:"repeat"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// loadDashboard parses the dashboard file.
func loadDashboard(t testing.TB) (dashboard, []byte) {
	t.Helper()
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d, raw
}

// dashboardExprs are every panel's queries, by "panel title/refId".
func (d dashboard) exprs() map[string]string {
	out := map[string]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out[p.Title+"/"+tg.RefID] = tg.Expr
		}
	}
	return out
}

// documentedMetrics are the metric names docs/METRICS.md lists in its
// tables, with a histogram's _bucket, _sum and _count series.
func documentedMetrics(t testing.TB) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../docs/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(bp_[a-z0-9_]+)` \\| (counter|gauge|histogram) \\|")
	names := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		names[m[1]] = true
		if m[2] == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[m[1]+s] = true
			}
		}
	}
	if len(names) < 20 {
		t.Fatalf("docs/METRICS.md: found only %d metrics in its tables: %v", len(names), names)
	}
	return names
}

var (
	metricName = regexp.MustCompile(`\b(?:bp|haproxy)_[a-z0-9_]+\b`)
	rangeSel   = regexp.MustCompile(`\[[^\]]*\]`)
	quoted     = regexp.MustCompile(`"[^"]*"`)
)

// haproxyUsed is what the dashboard may use from HAProxy's exporter, when
// no HAProxy is installed to ask.
var haproxyShape = regexp.MustCompile(`^haproxy_(frontend|backend|server|process)_[a-z_]+$`)

// TestDashboard checks the Grafana dashboard without Grafana: provisioning
// needs (stable uid, a datasource variable, no import placeholders), a
// recent schema, a row per hop along the path, units and descriptions on
// every panel, and queries that name only metrics that exist (docs/METRICS.md
// for bp_*, HAProxy's real exporter for haproxy_*) and wrap every counter in
// rate or increase over $__rate_interval.
func TestDashboard(t *testing.T) {
	t.Parallel()
	d, raw := loadDashboard(t)
	if d.UID != "go-backpressure" {
		t.Errorf("uid %q, want the stable go-backpressure (links and docs use it)", d.UID)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d, want a current one (>= 39)", d.SchemaVersion)
	}
	if strings.Contains(string(raw), "${DS_") || strings.Contains(string(raw), "__inputs") {
		t.Error("dashboard has import placeholders (${DS_...} or __inputs), which break file provisioning")
	}
	var haveDS bool
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			haveDS = true
		}
	}
	if !haveDS {
		t.Errorf("no template variable datasource of type datasource, query prometheus: %+v", d.Templating.List)
	}

	// Rows: the path on top, then rows repeated per hop of each kind, and
	// no query names a hop (the path is whatever is scraped).
	var rows, repeats []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			rows = append(rows, p.Title)
			if p.Repeat != "" {
				repeats = append(repeats, p.Repeat)
			}
		}
	}
	if len(rows) == 0 || !strings.Contains(rows[0], "path") {
		t.Errorf("rows %q: want the whole path first", rows)
	}
	if got := strings.Join(repeats, ","); got != "bp_hop,relay_hop,lb_hop,sidecar_hop" {
		t.Errorf("repeated rows over %q, want bp_hop,relay_hop,lb_hop,sidecar_hop", got)
	}
	namedHop := regexp.MustCompile(`hop=~?"[^$"]`)
	for k, e := range d.exprs() {
		if namedHop.MatchString(e) {
			t.Errorf("%s: %q names a hop; filter on a variable ($hop, $bp_hop...)", k, e)
		}
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	for _, name := range []string{"hop", "protocol", "bp_hop", "relay_hop", "lb_hop", "sidecar_hop"} {
		if !vars[name] {
			t.Errorf("no template variable %s", name)
		}
	}

	documented := documentedMetrics(t)
	haproxyNames := haproxyExporterNames(t)
	sideBySide := false
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		where := fmt.Sprintf("panel %q", p.Title)
		if p.Description == "" || !strings.Contains(strings.ToLower(p.Description), "healthy") {
			t.Errorf("%s: its description must say what healthy (and backpressured) looks like: %q", where, p.Description)
		}
		if p.FieldConfig.Defaults.Unit == "" {
			t.Errorf("%s: no unit", where)
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: datasource uid %q, want ${datasource}", where, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", where)
		}
		if p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("%s: no size", where)
		}
		for _, tg := range p.Targets {
			expr := tg.Expr
			if strings.Contains(expr, "by (hop)") {
				sideBySide = true
			}
			for _, r := range rangeSel.FindAllString(expr, -1) {
				if r != "[$__rate_interval]" {
					t.Errorf("%s: range %s in %q, want [$__rate_interval]", where, r, expr)
				}
			}
			// Label values ("bp_in") are not metric names: blank them out,
			// keeping every offset.
			bare := quoted.ReplaceAllStringFunc(expr, func(q string) string { return strings.Repeat("x", len(q)) })
			for _, loc := range metricName.FindAllStringIndex(bare, -1) {
				name := expr[loc[0]:loc[1]]
				switch {
				case strings.HasPrefix(name, "bp_") && !documented[name]:
					t.Errorf("%s: %s is not in docs/METRICS.md (%q)", where, name, expr)
				case strings.HasPrefix(name, "haproxy_") && haproxyNames != nil && !haproxyNames[name]:
					t.Errorf("%s: HAProxy's exporter has no %s (%q)", where, name, expr)
				case strings.HasPrefix(name, "haproxy_") && !haproxyShape.MatchString(name):
					t.Errorf("%s: %s is not an HAProxy exporter name (%q)", where, name, expr)
				}
				counter := false
				for _, s := range []string{"_total", "_sum", "_count", "_bucket"} {
					counter = counter || strings.HasSuffix(name, s)
				}
				before := expr[:loc[0]]
				wrapped := strings.HasSuffix(before, "rate(") || strings.HasSuffix(before, "increase(")
				if counter && !wrapped {
					t.Errorf("%s: counter %s not inside rate( or increase( in %q", where, name, expr)
				}
				if counter && !strings.HasPrefix(expr[loc[1]:], "{") && !strings.HasPrefix(expr[loc[1]:], "[") {
					t.Errorf("%s: %s: odd query %q", where, name, expr)
				}
			}
		}
	}
	if !sideBySide {
		t.Error("no panel puts the hops side by side (a query grouped by (hop))")
	}
	checkPromQL(t, d)
}

// checkPromQL parses every query with promtool (as recording rules, with
// $__rate_interval as 1m), so a syntax error fails without a running
// Prometheus. The native lab test (TestLabObserve) runs them for real.
func checkPromQL(t *testing.T, d dashboard) {
	promtool := needTool(t, "promtool", "prometheus")
	exprs := d.exprs()
	keys := make([]string, 0, len(exprs))
	for k := range exprs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, k := range keys {
		expr := strings.ReplaceAll(exprs[k], "$__rate_interval", "1m")
		q, _ := json.Marshal(expr) // a JSON string is a YAML string
		fmt.Fprintf(&b, "      - record: dashboard:query_%d\n        expr: %s\n", i, q)
	}
	rules := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(rules, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Errorf("promtool check rules on the dashboard's %d queries: %v\n%s", len(keys), err, out)
	}
}

// haproxyExporterNames runs HAProxy with deploy/haproxy/haproxy-ws.cfg (the
// compose file's) just long enough to read its exporter's metric names; nil
// when HAProxy is not installed (outside CI).
func haproxyExporterNames(t *testing.T) map[string]bool {
	t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("haproxy not installed: %s", lab.InstallHint)
		}
		t.Logf("haproxy not installed, haproxy_* names checked by shape only (%s)", lab.InstallHint)
		return nil
	}
	stats := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command("haproxy", "-f", "../deploy/haproxy/haproxy-ws.cfg", "-db")
	cmd.Env = testEnv(lab.HAProxyEnv(fmt.Sprintf("127.0.0.1:%d", freePort(t)), "127.0.0.1:1", stats))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + stats + "/metrics")
		if err != nil {
			continue
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		break
	}
	names := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			names[strings.Fields(line)[2]] = true
		}
	}
	if len(names) < 50 {
		t.Fatalf("HAProxy's exporter at %s listed %d metrics", stats, len(names))
	}
	return names
}
