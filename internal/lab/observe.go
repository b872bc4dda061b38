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

	"github.com/go-backpressure/go-backpressure/internal/netlab"
)

// The observed lab runs docker-compose.yml's topology natively, from the
// same files in deploy/, with Prometheus scraping every hop:
//
//	bp-client --loop --ws--> bp-relay --ws--> HAProxy --ws--> bp-server
//	hop=client               hop=relay        hop=haproxy     hop=server
//	                                          + bp-sockets (hop=haproxy)
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
	ObserveClient = []string{"--loop", "--loop-pause", "5s", "--duration", "30s", "--payload-size", "64KiB", "--rate", "160", "--sndbuf", "256KiB"}
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

	// Hosts runs each program on a host of its own (root): client, relay,
	// haproxy and server in network namespaces joined by shaped links
	// (observeNet), Prometheus in the machine's own namespace scraping
	// each through a forwarder. Links changes a link, in -link syntax.
	Hosts bool
	Links []string
	// LineBin is the delay line helper for the links (Options.LineBin).
	LineBin string
}

// Observatory is a running observed lab. Stop ends it.
type Observatory struct {
	PrometheusURL string            // http://host:port
	Targets       map[string]string // hop (or "haproxy/sockets", its sidecar) -> its /metrics URL
	// Reachable is, per hop of Targets, the /metrics URL Prometheus
	// scrapes, which answers from this machine's own namespace: the same
	// URL on loopback; with Hosts, the hop's forwarder on 127.0.0.1 (a
	// Targets address is inside the hop's namespace, out of reach).
	Reachable map[string]string
	Dir       string
	// Reports is the file that collects bp-client's report of every run
	// (they are also written to Progress, when set).
	Reports string
	// Hosts are the hosts, with ObserveOptions.Hosts.
	Hosts      []netlab.Host
	run        *run
	reports    *os.File
	forwarders []*forwarder
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
	if err := o.missing(); err != nil {
		return nil, err
	}
	dir, err := makeDir(o.Dir, "bp-observe-")
	if err != nil {
		return nil, err
	}
	r := &run{opts: Options{Bin: o.Bin, Deploy: o.Deploy, Progress: o.Progress}, dir: dir}
	ob = &Observatory{Dir: dir, Targets: map[string]string{}, run: r}
	defer func() {
		if err != nil {
			ob.Stop()
			ob = nil
			if o.Dir == "" { // ours, and the caller gets no Observatory to remove it by
				os.RemoveAll(dir)
			}
		}
	}()
	if o.Hosts {
		if err := ob.startObserveNet(ctx, o); err != nil {
			return nil, err
		}
	}
	// From the server to the client, each in front of the one before.
	srvHTTP, err := ob.startServer(ctx, o)
	if err != nil {
		return nil, err
	}
	hapListen, err := ob.startHAProxy(ctx, o, srvHTTP)
	if err != nil {
		return nil, err
	}
	relayHTTP, err := ob.startRelay(ctx, o, hapListen)
	if err != nil {
		return nil, err
	}
	if err := ob.startClient(ctx, o, relayHTTP); err != nil {
		return nil, err
	}
	if err := ob.startPrometheus(ctx, o); err != nil {
		return nil, err
	}
	return ob, nil
}

// missing says which program or tool the observed lab lacks, if any.
func (o ObserveOptions) missing() error {
	if o.Hosts && os.Geteuid() != 0 {
		return fmt.Errorf("%w: -hosts: %v", ErrMissing, netlab.ErrNotRoot)
	}
	for _, bin := range []string{"bp-server", "bp-relay", "bp-client", "bp-sockets"} {
		if _, err := os.Stat(filepath.Join(o.Bin, bin)); err != nil {
			return fmt.Errorf("%w: %s is not built in %s (make build)", ErrMissing, bin, o.Bin)
		}
	}
	for _, tool := range []struct{ name, hint string }{{"haproxy", InstallHint}, {"prometheus", PrometheusHint}} {
		if _, err := exec.LookPath(tool.name); err != nil {
			return fmt.Errorf("%w: %s is not installed; %s", ErrMissing, tool.name, tool.hint)
		}
	}
	return nil
}

// makeDir makes dir, or, when dir is "", a new temporary directory named
// after pattern.
func makeDir(dir, pattern string) (string, error) {
	if dir == "" {
		return os.MkdirTemp("", pattern)
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// startServer starts bp-server, on ports it picks, and returns its HTTP
// address.
func (ob *Observatory) startServer(ctx context.Context, o ObserveOptions) (string, error) {
	ip := "127.0.0.1"
	if ob.run.net != nil {
		ip = ob.run.net.FirstAddr("server")
	}
	proc, err := ob.run.start("bp-server", filepath.Join(o.Bin, "bp-server"), append([]string{
		"--http-addr", ip + ":0", "--tcp-addr", "", "--grpc-addr", "", "--log-format", "json",
	}, o.Server...), nil, nil)
	if err != nil {
		return "", err
	}
	srv, err := waitServer(ctx, proc)
	if err != nil {
		return "", err
	}
	ob.Targets["server"] = "http://" + srv.http + "/metrics"
	return srv.http, nil
}

// startHAProxy starts HAProxy in front of the server at srvHTTP, in
// WebSocket mode as in docker-compose.yml, and returns its listener.
func (ob *Observatory) startHAProxy(ctx context.Context, o ObserveOptions, srvHTTP string) (string, error) {
	listen, err := ob.run.listenAddr("haproxy")
	if err != nil {
		return "", err
	}
	stats, err := ob.run.listenAddr("haproxy")
	if err != nil {
		return "", err
	}
	hap, err := ob.run.start("haproxy", "haproxy",
		[]string{"-f", filepath.Join(o.Deploy, "haproxy", "haproxy-ws.cfg"), "-db"},
		HAProxyEnv(listen, srvHTTP, stats), nil)
	if err != nil {
		return "", err
	}
	ob.Targets["haproxy"] = "http://" + stats + "/metrics"
	if err := waitHTTP(ctx, hap, ob.Targets["haproxy"], 10*time.Second); err != nil {
		return "", err
	}
	return listen, ob.startSockets(ctx, listen, srvHTTP)
}

// startSockets starts bp-sockets beside HAProxy, as docker-compose.yml's
// sidecar: HAProxy's listener is its downstream side, the server its
// upstream side, so the "where the bytes are" panel has HAProxy's kernel
// queues.
func (ob *Observatory) startSockets(ctx context.Context, listen, srvHTTP string) error {
	h := &hop{name: "haproxy"}
	if err := ob.run.startSockets(ctx, h, listen, srvHTTP); err != nil {
		return err
	}
	ob.Targets["haproxy"+socketsSuffix] = h.socketsURL
	return nil
}

// startRelay starts bp-relay in front of HAProxy at hapListen, its metrics
// on its HTTP listener, and returns that listener.
func (ob *Observatory) startRelay(ctx context.Context, o ObserveOptions, hapListen string) (string, error) {
	relayHTTP, err := ob.run.listenAddr("relay")
	if err != nil {
		return "", err
	}
	relay, err := ob.run.start("bp-relay", filepath.Join(o.Bin, "bp-relay"), append([]string{
		"--http-addr", relayHTTP, "--tcp-addr", "", "--upstream", "ws://" + hapListen + "/ws", "--log-format", "json",
	}, o.Relay...), nil, nil)
	if err != nil {
		return "", err
	}
	ob.Targets["relay"] = "http://" + relayHTTP + "/metrics"
	return relayHTTP, waitHTTP(ctx, relay, "http://"+relayHTTP+"/healthz", 10*time.Second)
}

// startClient starts bp-client, in a loop, through the relay at relayHTTP.
func (ob *Observatory) startClient(ctx context.Context, o ObserveOptions, relayHTTP string) error {
	clientMetrics, err := ob.run.listenAddr("client")
	if err != nil {
		return err
	}
	ob.Reports = filepath.Join(ob.Dir, "bp-client-reports.txt")
	if ob.reports, err = os.Create(ob.Reports); err != nil {
		return fmt.Errorf("reports file: %w", err)
	}
	var reports io.Writer = ob.reports
	if o.Progress != nil {
		reports = io.MultiWriter(ob.reports, o.Progress)
	}
	cli, err := ob.run.start("bp-client", filepath.Join(o.Bin, "bp-client"), append([]string{
		"--target", "ws://" + relayHTTP + "/ws", "--metrics-addr", clientMetrics,
		"--progress", "off", "--log-format", "json",
	}, o.Client...), nil, reports)
	if err != nil {
		return err
	}
	ob.Targets["client"] = "http://" + clientMetrics + "/metrics"
	return waitHTTP(ctx, cli, "http://"+clientMetrics+"/healthz", 10*time.Second)
}

// startPrometheus starts Prometheus, from deploy/prometheus/prometheus.yml
// with the targets' addresses, as a foreground process with its own data
// directory, and waits until it is ready.
func (ob *Observatory) startPrometheus(ctx context.Context, o ObserveOptions) error {
	addrs := map[string]string{}
	ob.Reachable = map[string]string{}
	for hop, u := range ob.Targets {
		addrs[hop] = strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/metrics")
		if ob.run.net != nil {
			f, err := forward(addrs[hop])
			if err != nil {
				return err
			}
			ob.forwarders = append(ob.forwarders, f)
			addrs[hop] = f.Addr()
		}
		ob.Reachable[hop] = "http://" + addrs[hop] + "/metrics"
	}
	conf, err := RenderPrometheus(filepath.Join(o.Deploy, "prometheus", "prometheus.yml"), addrs, o.ScrapeInterval)
	if err != nil {
		return err
	}
	confPath := filepath.Join(ob.Dir, "prometheus.yml")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return err
	}
	prom, err := ob.run.start("prometheus", "prometheus", []string{
		"--config.file", confPath,
		"--storage.tsdb.path", filepath.Join(ob.Dir, "prometheus-data"),
		"--web.listen-address", o.PrometheusAddr,
		"--log.level", "warn",
	}, nil, nil)
	if err != nil {
		return err
	}
	ob.PrometheusURL = "http://" + o.PrometheusAddr
	return waitHTTP(ctx, prom, ob.PrometheusURL+"/-/ready", 30*time.Second)
}

// Stop stops every process the lab started, by pid: the client first,
// Prometheus too. Safe to call more than once.
func (ob *Observatory) Stop() {
	if ob != nil {
		ob.run.stopAll()
		for _, f := range ob.forwarders {
			f.Close()
		}
		ob.forwarders = nil
		if ob.run.net != nil {
			ob.run.net.Close()
			ob.run.net = nil
		}
		if ob.reports != nil {
			ob.reports.Close()
		}
	}
}

// Exited returns the name of a program that has ended, or "".
func (ob *Observatory) Exited() string {
	ob.run.mu.Lock()
	defer ob.run.mu.Unlock()
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

// RenderPrometheus reads the Prometheus configuration at path and returns it
// with every static target replaced by the address of its hop (the target
// label "hop"; in the job bp-sockets, the key is the hop's name plus
// "/sockets": its sidecar), and, when interval is not 0, that scrape interval (and a
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
			if name, _ := job["job_name"].(string); name == "bp-sockets" {
				hop += socketsSuffix // the hop's sidecar, not the hop
			}
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
