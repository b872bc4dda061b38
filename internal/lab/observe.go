package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The observed lab runs docker-compose.yml's topology natively, from the
// same files in deploy/, with Prometheus scraping every hop:
//
//	bp-client --loop --ws--> bp-relay --ws--> HAProxy --ws--> bp-server
//	hop=client               hop=relay        hop=haproxy     hop=server
//	                    Prometheus (deploy/prometheus/prometheus.yml)
//
// These are the settings docker-compose.yml gives the same services (a test
// keeps the two in step); only the addresses differ.
var (
	// ObserveServer: bp-server reads for 10 s of every connection, then
	// stops for 10 s, so there is always a pause to see.
	ObserveServer = []string{"--pause-after", "10s", "--pause-for", "10s", "--rcvbuf", "256KiB"}
	// ObserveRelay: a bounded buffer, so the relay's fill shows.
	ObserveRelay = []string{"--buffer", "4MiB"}
	// ObserveClient: 30 s runs of 64 KiB messages at 10 MiB/s, 5 s apart,
	// forever.
	ObserveClient = []string{"--loop", "--loop-pause", "5s", "--duration", "30s", "--rate", "160", "--sndbuf", "256KiB"}
)

// PrometheusHint says how to get Prometheus (and promtool) from Debian.
const PrometheusHint = "install with: sudo apt-get install -y prometheus (or sudo scripts/install-test-deps)"

// ObserveOptions say where the observed lab finds its programs and how it
// runs them.
type ObserveOptions struct {
	Bin    string // directory with bp-server, bp-client and bp-relay
	Deploy string // the deploy/ directory

	// Each program's settings; nil means ObserveServer, ObserveRelay,
	// ObserveClient.
	Server, Relay, Client []string

	PrometheusAddr string        // Prometheus's web listener (default 127.0.0.1:9090)
	ScrapeInterval time.Duration // 0: the one in deploy/prometheus/prometheus.yml
	Dir            string        // logs, rendered configs and Prometheus's data ("": a new temporary directory)
	Progress       io.Writer
}

// Observatory is a running observed lab. Stop ends it.
type Observatory struct {
	PrometheusURL string            // http://host:port
	Targets       map[string]string // hop -> its /metrics URL
	Dir           string
	run           *run
}

// withDefaults fills in what the options leave out.
func (o ObserveOptions) withDefaults() ObserveOptions {
	if o.Server == nil {
		o.Server = ObserveServer
	}
	if o.Relay == nil {
		o.Relay = ObserveRelay
	}
	if o.Client == nil {
		o.Client = ObserveClient
	}
	if o.PrometheusAddr == "" {
		o.PrometheusAddr = "127.0.0.1:9090"
	}
	return o
}

// Observe starts the observed lab: bp-server, HAProxy, bp-relay, bp-client
// (in a loop) and Prometheus, each a process of its own on loopback, and
// returns once Prometheus is ready. On error everything it started is
// stopped, by pid; otherwise Stop does that.
func Observe(ctx context.Context, o ObserveOptions) (ob *Observatory, err error) {
	o = o.withDefaults()
	for _, bin := range []string{"bp-server", "bp-relay", "bp-client"} {
		if _, err := os.Stat(filepath.Join(o.Bin, bin)); err != nil {
			return nil, fmt.Errorf("%w: %s is not built in %s (make build)", ErrMissing, bin, o.Bin)
		}
	}
	for _, tool := range []struct{ name, hint string }{{"haproxy", InstallHint}, {"prometheus", PrometheusHint}} {
		if _, err := exec.LookPath(tool.name); err != nil {
			return nil, fmt.Errorf("%w: %s is not installed; %s", ErrMissing, tool.name, tool.hint)
		}
	}
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "bp-observe-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &run{opts: Options{Bin: o.Bin, Deploy: o.Deploy, Progress: o.Progress}, dir: dir}
	ob = &Observatory{Dir: dir, Targets: map[string]string{}, run: r}
	defer func() {
		if err != nil {
			r.stopAll()
			ob = nil
		}
	}()

	// bp-server, on ports it picks.
	srvProc, err := r.start("bp-server", filepath.Join(o.Bin, "bp-server"), append([]string{
		"--http-addr", "127.0.0.1:0", "--tcp-addr", "", "--log-format", "json",
	}, o.Server...), nil, nil)
	if err != nil {
		return nil, err
	}
	srv, err := waitServer(ctx, srvProc)
	if err != nil {
		return nil, err
	}
	ob.Targets["server"] = "http://" + srv.http + "/metrics"

	// HAProxy in front of it, WebSocket mode, as in docker-compose.yml.
	hapListen, hapStats, err := twoAddrs()
	if err != nil {
		return nil, err
	}
	hap, err := r.start("haproxy", "haproxy",
		[]string{"-f", filepath.Join(o.Deploy, "haproxy", "haproxy-ws.cfg"), "-db"},
		HAProxyEnv(hapListen, srv.http, hapStats), nil)
	if err != nil {
		return nil, err
	}
	ob.Targets["haproxy"] = "http://" + hapStats + "/metrics"
	if err := waitHTTP(ctx, hap, ob.Targets["haproxy"], 10*time.Second); err != nil {
		return nil, err
	}

	// bp-relay in front of HAProxy; its metrics on its HTTP listener.
	relayHTTP, err := freeAddr()
	if err != nil {
		return nil, err
	}
	relay, err := r.start("bp-relay", filepath.Join(o.Bin, "bp-relay"), append([]string{
		"--http-addr", relayHTTP, "--tcp-addr", "", "--upstream", "ws://" + hapListen + "/ws", "--log-format", "json",
	}, o.Relay...), nil, nil)
	if err != nil {
		return nil, err
	}
	ob.Targets["relay"] = "http://" + relayHTTP + "/metrics"
	if err := waitHTTP(ctx, relay, "http://"+relayHTTP+"/healthz", 10*time.Second); err != nil {
		return nil, err
	}

	// bp-client, in a loop, through the relay.
	clientMetrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cli, err := r.start("bp-client", filepath.Join(o.Bin, "bp-client"), append([]string{
		"--target", "ws://" + relayHTTP + "/ws", "--metrics-addr", clientMetrics,
		"--progress", "off", "--log-format", "json",
	}, o.Client...), nil, nil)
	if err != nil {
		return nil, err
	}
	ob.Targets["client"] = "http://" + clientMetrics + "/metrics"
	if err := waitHTTP(ctx, cli, "http://"+clientMetrics+"/healthz", 10*time.Second); err != nil {
		return nil, err
	}

	// Prometheus, from deploy/prometheus/prometheus.yml with these
	// addresses, as a foreground process with its own data directory.
	addrs := map[string]string{}
	for hop, u := range ob.Targets {
		addrs[hop] = strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/metrics")
	}
	conf, err := RenderPrometheus(filepath.Join(o.Deploy, "prometheus", "prometheus.yml"), addrs, o.ScrapeInterval)
	if err != nil {
		return nil, err
	}
	confPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return nil, err
	}
	prom, err := r.start("prometheus", "prometheus", []string{
		"--config.file", confPath,
		"--storage.tsdb.path", filepath.Join(dir, "prometheus-data"),
		"--web.listen-address", o.PrometheusAddr,
		"--log.level", "warn",
	}, nil, nil)
	if err != nil {
		return nil, err
	}
	ob.PrometheusURL = "http://" + o.PrometheusAddr
	if err := waitHTTP(ctx, prom, ob.PrometheusURL+"/-/ready", 30*time.Second); err != nil {
		return nil, err
	}
	return ob, nil
}

// Stop stops every process the lab started, by pid: the client first,
// Prometheus too. Safe to call more than once.
func (ob *Observatory) Stop() {
	if ob != nil {
		ob.run.stopAll()
	}
}

// Exited returns the name of a program that has ended, or "".
func (ob *Observatory) Exited() string {
	for _, p := range ob.run.procs {
		if p.exited() {
			return p.name
		}
	}
	return ""
}

// Log is the path of a program's log ("bp-client", "prometheus", ...).
func (ob *Observatory) Log(name string) string {
	return filepath.Join(ob.Dir, name+".log")
}

func twoAddrs() (string, string, error) {
	a, err := freeAddr()
	if err != nil {
		return "", "", err
	}
	b, err := freeAddr()
	return a, b, err
}

// RenderPrometheus reads the Prometheus configuration at path and returns it
// with every static target replaced by the address of its hop (the target
// label "hop"), and, when interval is not 0, that scrape interval (and a
// timeout within it). A hop of the file without an address is an error,
// and so is an address for a hop the file does not scrape.
func RenderPrometheus(path string, addrs map[string]string, interval time.Duration) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("prometheus config: %w", err)
	}
	var conf map[string]any
	if err := yaml.Unmarshal(raw, &conf); err != nil {
		return nil, fmt.Errorf("prometheus config %s: %w", path, err)
	}
	seen := map[string]bool{}
	jobs, _ := conf["scrape_configs"].([]any)
	for _, j := range jobs {
		job, _ := j.(map[string]any)
		statics, _ := job["static_configs"].([]any)
		for _, s := range statics {
			sc, _ := s.(map[string]any)
			labels, _ := sc["labels"].(map[string]any)
			hop, _ := labels["hop"].(string)
			addr, ok := addrs[hop]
			if !ok {
				return nil, fmt.Errorf("prometheus config %s: no address for hop %q", path, hop)
			}
			sc["targets"] = []any{addr}
			seen[hop] = true
		}
	}
	for hop := range addrs {
		if !seen[hop] {
			return nil, fmt.Errorf("prometheus config %s: does not scrape hop %q", path, hop)
		}
	}
	if interval > 0 {
		global, _ := conf["global"].(map[string]any)
		if global == nil {
			global = map[string]any{}
			conf["global"] = global
		}
		global["scrape_interval"] = interval.String()
		global["evaluation_interval"] = interval.String()
		global["scrape_timeout"] = (interval * 4 / 5).String()
	}
	out, err := yaml.Marshal(conf)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Rendered from "+path+" by the observed lab (internal/lab/observe.go).\n"), out...), nil
}

// Query GETs path (such as "/api/v1/targets") from the lab's Prometheus
// and returns the body of a 200 answer.
func (ob *Observatory) Query(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ob.PrometheusURL+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, errors.New(resp.Status + ": " + string(body))
	}
	return body, nil
}
