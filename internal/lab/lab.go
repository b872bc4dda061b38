package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/netlab"
	"github.com/go-backpressure/go-backpressure/pkg/report"
)

// Options say where the lab finds its programs and what the ends do.
type Options struct {
	Bin      string   // directory with bp-server, bp-client and bp-relay
	Deploy   string   // the deploy/ directory with the HAProxy and nginx configs
	Server   []string // more bp-server flags: how it reads (--pause-after, --rcvbuf, ...)
	Client   []string // more bp-client flags: what it writes (--duration, --rate, ...)
	Keep     bool     // keep the run's directory (logs, rendered configs) and, with Hold, the hosts
	Progress io.Writer
	// Links change a host profile's links, in netlab.ParseLink's syntax
	// (client-haproxy=100mbit,40ms,0.1%); TCPRmem and TCPWmem set hosts'
	// net.ipv4.tcp_rmem/tcp_wmem (host=min,default,max; host "all").
	Links, TCPRmem, TCPWmem []string
	// Hold, with Keep, is called with the hosts before they are removed,
	// and returns when they may go (scripts/lab: at Ctrl-C).
	Hold func(hosts []netlab.Host)
	// Watch, for a host profile, is called once the hosts are up and
	// before anything runs on them (a test starts a capture there); the
	// stop it returns is called once the client has reported and every
	// hop is scraped, before the hosts go.
	Watch func(hosts []netlab.Host) (stop func())
	// LineBin, for a host profile, is the delay line helper
	// (scripts/delayline) to run the links' lines in (netlab.Spec.LineBin).
	LineBin string
}

// Result is what one run measured: the client's report, and each hop's
// numbers scraped at the end, from the client to the server.
type Result struct {
	Profile Profile
	Target  string
	Client  report.Summary
	Hops    []Hop
	// ByteMap is where the unread bytes sat when the client first blocked,
	// from the snapshots polled during the run; nil when the server never
	// paused while every endpoint answered.
	ByteMap *ByteMap
	Dir     string // the run's directory; removed unless Options.Keep
	// Hosts and Links are the profile's hosts of their own and what the
	// kernel measured on each link (host profiles only).
	Hosts []netlab.Host
	Links []LinkResult
}

// Hop is one program on the path and its key numbers.
type Hop struct {
	Name    string   `json:"name"`   // "bp-client", "bp-relay", "haproxy", "nginx", "caddy", "bp-server"
	Source  string   `json:"source"` // where the numbers came from
	Numbers []Number `json:"numbers"`
	// Notes say plainly what the hop does not count, so that a missing
	// number is not mistaken for a zero.
	Notes []string `json:"notes,omitempty"`
}

// Number is one key number of a hop.
type Number struct {
	Key   string  `json:"key"`   // stable name, e.g. "bytes_read", "frontend_bytes_in"
	Label string  `json:"label"` // for people
	Unit  string  `json:"unit"`  // "bytes", "seconds" or "" (a count)
	Value float64 `json:"value"`
}

// Value returns the number with the key, and whether the hop has it.
func (h Hop) Value(key string) (float64, bool) {
	for _, n := range h.Numbers {
		if n.Key == key {
			return n.Value, true
		}
	}
	return 0, false
}

// Hop returns the hop with the name, or nil.
func (r *Result) Hop(name string) *Hop {
	for i := range r.Hops {
		if r.Hops[i].Name == name {
			return &r.Hops[i]
		}
	}
	return nil
}

// run is one run's state: its directory and the processes it started.
type run struct {
	opts Options
	dir  string
	// mu guards procs: a fleet starts its clients side by side.
	mu    sync.Mutex
	procs []*process
	net   *netlab.Net // the hosts, for a profile with hosts of its own
	port  int         // the last port listenAddr gave out on a host
	// caFile is the CA of a hop that terminates TLS: the client trusts it.
	caFile string
}

type serverAddrs struct{ http, tcp, grpc string }

// forScheme is the server's listener a client of scheme connects to: TCP's,
// gRPC's, or the HTTP listener (WebSocket and HTTP/2).
func (a serverAddrs) forScheme(scheme string) string {
	switch scheme {
	case "tcp":
		return a.tcp
	case "grpc":
		return a.grpc
	}
	return a.http
}

// start starts a program of the run. stdout, when not nil, takes its
// standard output (a report); otherwise that goes to its log with stderr.
// It is an io.Writer, not an *os.File, so that a nil one is really nil: a
// nil *os.File in an interface is not, and the program's output would go
// nowhere.
func (r *run) start(name, bin string, args, env []string, stdout io.Writer) (*process, error) {
	if r.net != nil && !onMachine(name) {
		bin, args = netlab.Exec(r.net.NS(hostFor(name)), bin, args...)
	}
	p, err := start(r.dir, name, bin, args, env, stdout)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
	r.progress("started %s (pid %d): %s %s", name, p.cmd.Process.Pid, bin, strings.Join(args, " "))
	return p, nil
}

func (r *run) progress(format string, a ...any) {
	if r.opts.Progress != nil {
		fmt.Fprintf(r.opts.Progress, "   "+format+"\n", a...)
	}
}

// stopAll stops every process, the last started first: client, hops,
// server.
func (r *run) stopAll() {
	r.mu.Lock()
	procs := append([]*process(nil), r.procs...)
	r.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
}

// Run runs the profile once: server, hop, client; waits for the client's
// report; scrapes every hop; stops everything it started, by pid.
func Run(ctx context.Context, p Profile, o Options) (res *Result, err error) {
	if err := p.Missing(o.Bin); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bp-lab-"+p.Name+"-")
	if err != nil {
		return nil, err
	}
	r := &run{opts: o, dir: dir}
	res = &Result{Profile: p, Dir: dir}
	defer r.finish(ctx)
	if err := r.startNet(ctx, p, res); err != nil {
		return nil, err
	}
	if r.net != nil && o.Watch != nil {
		defer o.Watch(r.net.Hosts)()
	}

	srv, err := r.startServer(ctx)
	if err != nil {
		return nil, err
	}
	res.Target = target(p.Scheme, srv.forScheme(p.Scheme))
	var hs []*hop
	res.Target, hs, err = r.startHops(ctx, p, srv, res.Target)
	if err != nil {
		return nil, err
	}
	clientMetrics, err := r.listenAddr("client")
	if err != nil {
		return nil, err
	}
	endpoints := pollEndpoints(clientMetrics, hs, srv)
	poll := startPoller(ctx, endpoints)
	rtts := r.startRTT(ctx)
	reports, err := r.runClient(ctx, res.Target, clientMetrics, &res.Client)
	snaps := poll.finish()
	res.Links = rtts.finish(r)
	if reports != nil {
		defer reports.Close()
	}
	if err != nil {
		return nil, err
	}
	if err := r.scrape(ctx, res, clientMetrics, hs, srv); err != nil {
		return res, err
	}
	res.addPolled(snaps, endpoints, hs, r.flights(hs))
	return res, nil
}

// pollEndpoints are the pages the poller scrapes during the run, from the
// client to the server.
func pollEndpoints(clientMetrics string, hs []*hop, srv serverAddrs) []endpoint {
	out := []endpoint{{key: "bp-client", url: "http://" + clientMetrics + "/metrics"}}
	for _, h := range hs {
		out = append(out, h.endpoints()...)
	}
	return append(out, endpoint{key: "bp-server", url: "http://" + srv.http + "/metrics"})
}

// addPolled adds what only the snapshots show: the byte map, and the
// relay's peak fill.
func (res *Result) addPolled(snaps []snapshot, endpoints []endpoint, hops []*hop, flights []flight) {
	keys := make([]string, len(endpoints))
	for i, e := range endpoints {
		keys[i] = e.key
	}
	res.ByteMap = buildByteMap(snaps, keys, hops, flights, res.Profile.Scheme, res.Client.PayloadSize)
	maxInFlight(snaps, flights, res.Links)
	if f, err := os.Create(filepath.Join(res.Dir, "bytemap-snapshots.txt")); err == nil {
		writeSnapshots(f, snaps, keys, hops, flights, res.Profile.Scheme, res.Client.PayloadSize)
		f.Close()
	}
	if rh := res.Hop("bp-relay"); rh != nil {
		if peak, ok := peakBuffered(snaps, "bp-relay"); ok {
			rh.Numbers = append(rh.Numbers, Number{Key: "peak_buffered_bytes", Label: "peak fill", Unit: "bytes", Value: peak})
		}
	}
}

// finish stops every process, removes the hosts and keeps or removes the
// run's directory.
func (r *run) finish(ctx context.Context) {
	r.stopAll()
	r.readNetstat()
	r.stopNet(ctx)
	if r.opts.Keep {
		r.progress("logs and configs kept in %s", r.dir)
	} else {
		os.RemoveAll(r.dir)
	}
}

// startServer starts bp-server on ports it picks; its log says which.
func (r *run) startServer(ctx context.Context) (serverAddrs, error) {
	return r.startServerOn(ctx, "bp-server", "server")
}

// startServerOn starts a bp-server named name, on the host (its address
// toward the client) when the run has hosts.
func (r *run) startServerOn(ctx context.Context, name, host string) (serverAddrs, error) {
	ip := "127.0.0.1"
	if r.net != nil {
		ip = r.net.FirstAddr(host)
	}
	proc, err := r.start(name, filepath.Join(r.opts.Bin, "bp-server"), append([]string{
		"--http-addr", ip + ":0", "--tcp-addr", ip + ":0", "--grpc-addr", ip + ":0", "--log-format", "json",
	}, r.opts.Server...), nil, nil)
	if err != nil {
		return serverAddrs{}, err
	}
	srv, err := waitServer(ctx, proc)
	if err != nil {
		return serverAddrs{}, err
	}
	r.progress("%s listening: http %s, tcp %s", name, srv.http, srv.tcp)
	return srv, nil
}

// runClient starts bp-client against target, with its report on a pipe
// and its metrics on clientMetrics kept up (--linger) until they are
// scraped, and waits for the report, decoded into summary. It returns the
// pipe's read end, which the caller closes only when done with the client
// (a closed pipe could fail the client's last writes).
func (r *run) runClient(ctx context.Context, target, clientMetrics string, summary *report.Summary) (*os.File, error) {
	return r.runClientOn(ctx, "bp-client", target, clientMetrics, summary, r.opts.Client)
}

// runClientOn is runClient for a bp-client named name with its own flags.
func (r *run) runClientOn(ctx context.Context, name, target, clientMetrics string, summary *report.Summary, flags []string) (*os.File, error) {
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cli, err := r.start(name, filepath.Join(r.opts.Bin, "bp-client"), append([]string{
		"--target", target, "--output", "json", "--progress", "off", "--log-format", "json",
		"--metrics-addr", clientMetrics, "--linger", "1m",
	}, append(r.caFlags(), flags...)...), nil, wr)
	wr.Close()
	if err != nil {
		return rd, err
	}
	reported := make(chan error, 1)
	go func() { reported <- json.NewDecoder(rd).Decode(summary) }()
	select {
	case err = <-reported:
		if err != nil {
			<-cli.done
			return rd, cli.failed(fmt.Errorf("no report (%v, exit: %v)", err, cli.err))
		}
	case <-ctx.Done():
		return rd, ctx.Err()
	}
	return rd, nil
}

// caFlags make the client trust the CA of a hop that terminates TLS.
func (r *run) caFlags() []string {
	if r.caFile == "" {
		return nil
	}
	return []string{"--ca-file", r.caFile}
}

// scrape adds every hop's numbers to res, from the client to the server,
// once its connections have closed; on error res holds the hops scraped
// so far.
func (r *run) scrape(ctx context.Context, res *Result, clientMetrics string, hs []*hop, srv serverAddrs) error {
	cliHop, err := bpNumbers(ctx, "bp-client", "http://"+clientMetrics+"/metrics")
	if err != nil {
		return err
	}
	res.Hops = append(res.Hops, cliHop)
	for _, h := range hs {
		hn, err := h.numbers(ctx)
		if err != nil {
			return err
		}
		res.Hops = append(res.Hops, hn)
	}
	srvHop, err := bpNumbers(ctx, "bp-server", "http://"+srv.http+"/metrics")
	if err != nil {
		return err
	}
	res.Hops = append(res.Hops, srvHop)
	return nil
}

// waitServer reads the server's log until it says where it listens.
func waitServer(ctx context.Context, p *process) (serverAddrs, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if f, err := os.Open(p.log); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var line struct{ Msg, HTTP, TCP, GRPC string }
				if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "bp-server listening" {
					f.Close()
					return serverAddrs{http: line.HTTP, tcp: line.TCP, grpc: line.GRPC}, nil
				}
			}
			f.Close()
		}
		if p.exited() {
			return serverAddrs{}, p.failed(fmt.Errorf("exited at start (%v)", p.err))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return serverAddrs{}, p.failed(errors.New("did not say it was listening"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle is how long a hop may take to close its connections after the
// client has closed its own.
const settle = 5 * time.Second

// bpNumbers scrapes a bp binary once its connections have closed.
func bpNumbers(ctx context.Context, name, url string) (Hop, error) {
	ss, err := scrapeSettled(ctx, url, func(ss samples) bool {
		open, _ := ss.sum("bp_connections", nil)
		return open == 0
	})
	if err != nil {
		return Hop{}, fmt.Errorf("%s: %w", name, err)
	}
	h := Hop{Name: name, Source: url}
	add := func(key, metric, label, unit string) {
		if v, ok := ss.sum(metric, nil); ok {
			h.Numbers = append(h.Numbers, Number{Key: key, Label: label, Unit: unit, Value: v})
		}
	}
	add("bytes_read", "bp_bytes_read_total", "read", "bytes")
	add("bytes_written", "bp_bytes_written_total", "written", "bytes")
	add("bytes_acked", "bp_bytes_acked_total", "acked", "bytes")
	add("blocked_seconds", "bp_write_blocked_seconds_sum", "blocked in writes", "seconds")
	add("stalls", "bp_stalls_total", "stalls", "")
	add("read_paused_seconds", "bp_read_paused_seconds_total", "reading paused", "seconds")
	// The relay's own metrics, whatever they are (buffer, pauses).
	for _, name := range ss.names("bp_relay_") {
		if strings.HasSuffix(name, "_bucket") {
			continue
		}
		add(name, name, strings.TrimPrefix(name, "bp_"), unitOf(name))
	}
	return h, nil
}

func unitOf(metric string) string {
	switch {
	case strings.Contains(metric, "bytes"):
		return "bytes"
	case strings.Contains(metric, "seconds"):
		return "seconds"
	}
	return ""
}

// scrapeSettled scrapes url until done says the numbers are final, or
// settle passes (then the last scrape counts).
func scrapeSettled(ctx context.Context, url string, done func(samples) bool) (samples, error) {
	deadline := time.Now().Add(settle)
	for {
		ss, err := scrape(ctx, url)
		if err != nil {
			return nil, err
		}
		if done(ss) || time.Now().After(deadline) || ctx.Err() != nil {
			return ss, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// numbers scrapes a hop: HAProxy's Prometheus exporter, nginx's access log,
// bp-relay's /metrics.
func (h *hop) numbers(ctx context.Context) (Hop, error) {
	switch h.name {
	case "bp-relay":
		return bpNumbers(ctx, h.name, h.metricsURL)
	case "haproxy":
		fe := map[string]string{"proxy": "bp_in"}
		be := map[string]string{"proxy": h.haproxyBackend()}
		ss, err := scrapeSettled(ctx, h.metricsURL, func(ss samples) bool {
			open, _ := ss.sum("haproxy_frontend_current_sessions", fe)
			return open == 0
		})
		if err != nil {
			return Hop{}, fmt.Errorf("haproxy: %w", err)
		}
		out := Hop{Name: h.name, Source: h.metricsURL}
		add := func(key, metric string, match map[string]string, label string) {
			if v, ok := ss.sum(metric, match); ok {
				out.Numbers = append(out.Numbers, Number{Key: key, Label: label, Unit: "bytes", Value: v})
			}
		}
		add("frontend_bytes_in", "haproxy_frontend_bytes_in_total", fe, "in from client")
		add("backend_bytes_out", "haproxy_backend_bytes_in_total", be, "out to server")
		add("backend_bytes_in", "haproxy_backend_bytes_out_total", be, "in from server")
		add("frontend_bytes_out", "haproxy_frontend_bytes_out_total", fe, "out to client")
		return out, nil
	case "nginx":
		return h.nginxNumbers(ctx)
	case "caddy":
		return h.caddyNumbers(ctx)
	}
	return Hop{}, fmt.Errorf("unknown hop %s", h.name)
}

// nginxNumbers sums nginx's access log (one JSON line per connection, when
// it ends) once stub_status shows no connection but the status request.
func (h *hop) nginxNumbers(ctx context.Context) (Hop, error) {
	lines := settledLog(ctx, h.accessLog, func() bool { return nginxActive(ctx, h.metricsURL) <= 1 })
	out := Hop{Name: h.name, Source: h.accessLog}
	add := func(key, field, label string) {
		if v, ok := sumField(lines, field); ok {
			out.Numbers = append(out.Numbers, Number{Key: key, Label: label, Unit: "bytes", Value: v})
		}
	}
	add("bytes_in", "bytes_received", "in from client")
	if h.streams { // an HTTP/2 stream's $request_length is its headers and whole body
		add("request_length", "request_length", "request from client")
	} else {
		add("request_length", "request_length", "upgrade request from client")
	}
	add("upstream_bytes_sent", "upstream_bytes_sent", "out to server")
	add("upstream_bytes_received", "upstream_bytes_received", "in from server")
	add("bytes_out", "bytes_sent", "out to client")
	out.Numbers = append(out.Numbers, Number{Key: "connections", Label: "connections logged", Value: float64(len(lines))})
	if _, ok := out.Value("bytes_in"); !ok && !h.streams {
		out.Notes = append(out.Notes, "in from client: not logged: nginx's HTTP module counts no bytes a client sends "+
			"through an upgraded connection ($request_length is the upgrade request only); "+
			"out to server ($upstream_bytes_sent) is the best measure of that direction")
	}
	return out, nil
}

// settledLog reads a JSON-lines access log until it has a line and closed
// says the hop's connections have ended, or settle passes.
func settledLog(ctx context.Context, path string, closed func() bool) []map[string]any {
	deadline := time.Now().Add(settle)
	for {
		var lines []map[string]any
		if b, err := os.ReadFile(path); err == nil {
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				var m map[string]any
				if json.Unmarshal([]byte(l), &m) == nil {
					lines = append(lines, m)
				}
			}
		}
		if (len(lines) > 0 && closed()) || time.Now().After(deadline) || ctx.Err() != nil {
			return lines
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sumField adds a field over the log's lines: a number, or nginx's
// upstream counts as text ("123", "-", or "12, 34" after retries).
func sumField(lines []map[string]any, field string) (float64, bool) {
	var total float64
	found := false
	for _, m := range lines {
		switch v := m[field].(type) {
		case float64:
			total += v
			found = true
		case string:
			for _, part := range strings.Split(v, ",") {
				if n, err := strconv.ParseFloat(strings.TrimSpace(part), 64); err == nil {
					total += n
					found = true
				}
			}
		}
	}
	return total, found
}

// nginxActive reads "Active connections: N" from stub_status; -1 when it
// cannot.
func nginxActive(ctx context.Context, url string) int {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ss, err := fetchText(ctx, url)
	if err != nil {
		return -1
	}
	var n int
	if _, err := fmt.Sscanf(ss, "Active connections: %d", &n); err != nil {
		return -1
	}
	return n
}
