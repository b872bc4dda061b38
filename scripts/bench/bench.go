package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

// options say what to run.
type options struct {
	Rounds      int
	Duration    time.Duration
	Bin         string // directory with the bp binaries; "" builds them
	Deploy      string // directory with haproxy/haproxy-tcp.cfg
	PayloadSize string
	Only        string // comma-separated words; a case runs when its name contains one
	Verbose     bool
	RequireAll  bool // a missing tool fails the run instead of skipping its case
	Load        bool // run a busy loop in the background (the loaded variant)
	LoadPin     bool // pin that busy loop to the last CPU
	// Compare is a second directory of bp binaries (-compare): its
	// bp-client, bp-server and bp-relay run the tcp, websocket and relay
	// cases again in every round, named with " [B]", for a side-by-side
	// comparison of two builds under the same load.
	Compare string
	// Amplify, when above 1, adds a case with the instrumentation Amplify
	// times as often as usual (sampling every 100ms/Amplify, Amplify
	// scrapes a second): a full-speed check of the instrumentation's cost
	// measured on the slow stream.
	Amplify int
}

// Case names, in the order each round runs them.
const (
	caseIperf   = "iperf3"
	caseTCP     = "bp tcp"
	caseTCPOff  = "bp tcp, instrumentation off"
	caseWS      = "bp websocket"
	caseGRPC    = "bp grpc"
	caseRelay   = "bp tcp via bp-relay (stream)"
	caseHAProxy = "bp tcp via haproxy"
	caseSocat   = "bp tcp via socat"
)

// benchCase is one way of sending the same stream.
type benchCase struct {
	name string
	tool string // external program it needs ("" for none)
	cmd  []string
	// instrumented: scrape /metrics of the client (metricsAddr) and the
	// server every second while it runs, as a busy Prometheus would.
	instrumented bool
	metricsAddr  string
	skipped      string // why the case does not run
	// peers are the long-running processes the stream passes besides the
	// client (servers, hops): their CPU time during the case counts.
	peers []*proc
	// serverHTTP is the bp-server whose /metrics an instrumented case
	// scrapes ("" the default one).
	serverHTTP string
	// scrapeEvery is how often an instrumented case is scraped (0: every
	// second).
	scrapeEvery time.Duration
	rates       []float64 // bytes per second, per round
	cpu         []float64 // CPU seconds (client + peers) per GB moved, per round
}

// ratio is one comparison the targets are about: num / den per round, of
// throughput or (cpu) of CPU seconds per GB.
type ratio struct {
	name     string
	num, den string
	cpu      bool    // compare CPU s/GB instead of throughput
	target   float64 // throughput: at least this; CPU: at most this; 0: informative
}

// ratios are the targets (issue 16), throughput then CPU per GB.
var ratios = []ratio{
	{"bp tcp / iperf3", caseTCP, caseIperf, false, 0.95},
	{"bp websocket / iperf3", caseWS, caseIperf, false, 0.7},
	{"bp grpc / bp tcp", caseGRPC, caseTCP, false, 0},
	{"instrumentation on / off (tcp)", caseTCP, caseTCPOff, false, 0.97},
	{"bp-relay / direct", caseRelay, caseTCP, false, 0},
	{"haproxy / direct", caseHAProxy, caseTCP, false, 0},
	{"socat / direct", caseSocat, caseTCP, false, 0},
	{"bp-relay / haproxy", caseRelay, caseHAProxy, false, 1.3},
	{"bp-relay / socat", caseRelay, caseSocat, false, 1.1},
	{"CPU/GB bp tcp / iperf3", caseTCP, caseIperf, true, 1.1},
	{"CPU/GB bp websocket / iperf3", caseWS, caseIperf, true, 0},
	{"CPU/GB bp grpc / bp tcp", caseGRPC, caseTCP, true, 0},
	{"CPU/GB instrumentation on / off (tcp)", caseTCP, caseTCPOff, true, 1.03},
	{"CPU/GB bp-relay / haproxy", caseRelay, caseHAProxy, true, 0},
	{"CPU/GB bp-relay / socat", caseRelay, caseSocat, true, 0},
}

// Result holds every case's throughput per round.
type Result struct {
	Options               options
	Cases                 []*benchCase
	Extra                 []ratio // -compare's ratios, after the targets'
	Load                  string  // the background load -load added ("" none)
	LoadBefore, LoadAfter string  // 1-minute load averages around the rounds
	// Cost is the instrumentation's own CPU, measured on a slow stream
	// each round (nil when the tcp cases on and off do not both run).
	Cost *instCost
}

func (r *Result) lookup(name string) *benchCase {
	for _, c := range r.Cases {
		if c.name == name {
			return c
		}
	}
	return nil
}

// run starts the servers and hops once, runs every case once per round,
// and stops everything it started.
func run(ctx context.Context, o options, log io.Writer) (*Result, error) {
	dir, err := os.MkdirTemp("", "bp-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := o.Bin
	if bin == "" {
		bin = dir
		fmt.Fprintln(log, "bench: building bp-server, bp-client, bp-relay")
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin+"/",
			"./cmd/bp-server", "./cmd/bp-client", "./cmd/bp-relay")
		build.Stdout, build.Stderr = log, log
		if err := build.Run(); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
	}
	var procs procSet
	defer procs.stopAll()
	start := func(name string, env []string, args ...string) (*proc, error) {
		if o.Verbose {
			fmt.Fprintf(log, "bench: start %s: %s\n", name, strings.Join(append(env, args...), " "))
		}
		return procs.start(dir, name, env, args...)
	}

	// Two servers: one with every instrument on, one with sampling off.
	srvOn, err := startServer(ctx, start, bin, "bp-server", "100ms")
	if err != nil {
		return nil, err
	}
	srvOff, err := startServer(ctx, start, bin, "bp-server-off", "0")
	if err != nil {
		return nil, err
	}

	res := &Result{Options: o}
	add := func(name, tool string, on bool, target string) *benchCase {
		c := &benchCase{name: name, tool: tool, instrumented: on}
		if target != "" {
			c.cmd, c.metricsAddr = clientArgs(o, bin, target, on)
		}
		res.Cases = append(res.Cases, c)
		return c
	}
	if err := addIperf(ctx, o, start, add); err != nil {
		return nil, err
	}
	add(caseTCP, "", true, "tcp://"+srvOn.tcp).peers = []*proc{srvOn.p}
	add(caseTCPOff, "", false, "tcp://"+srvOff.tcp).peers = []*proc{srvOff.p}
	if o.Amplify > 1 {
		if err := addAmplified(ctx, o, bin, start, add); err != nil {
			return nil, err
		}
	}
	add(caseWS, "", true, "ws://"+srvOn.http+"/ws").peers = []*proc{srvOn.p}
	add(caseGRPC, "", true, "grpc://"+srvOn.grpc).peers = []*proc{srvOn.p}
	if err := addHops(ctx, o, bin, srvOn, start, add); err != nil {
		return nil, err
	}
	if o.Compare != "" {
		if err := addCompare(ctx, o, res, start, add); err != nil {
			return res, err
		}
	}
	for _, c := range res.Cases {
		if c.skipped == "" && !selected(c.name, o.Only) {
			c.skipped = "not selected (-only)"
		}
		if c.skipped != "" && o.RequireAll {
			return res, fmt.Errorf("%s: %s", c.name, c.skipped)
		}
	}

	if o.Load {
		what, err := busyLoad(start, o.LoadPin)
		if err != nil {
			return res, err
		}
		res.Load = what
	}
	if on, off := res.lookup(caseTCP), res.lookup(caseTCPOff); on.skipped == "" && off.skipped == "" {
		res.Cost = newInstCost(o, bin, srvOn, srvOff)
	}
	res.LoadBefore = loadAvg()
	defer func() { res.LoadAfter = loadAvg() }()
	return res, runRounds(ctx, o, res, srvOn, log)
}

// startFunc starts one long-running process of the bench (procSet.start).
type startFunc = func(name string, env []string, args ...string) (*proc, error)

// addFunc adds a case to the result: its name, the tool it needs, whether
// it is instrumented, and bp-client's target ("" for a case that sets its
// own command).
type addFunc = func(name, tool string, on bool, target string) *benchCase

// clientArgs is bp-client's command for a case: instrumented (on) with a
// metrics listener, whose address it returns, and sampling, or with both
// off.
func clientArgs(o options, bin, target string, on bool) ([]string, string) {
	args := []string{filepath.Join(bin, "bp-client"), "--target", target, "--output", "json",
		"--progress", "off", "--duration", o.Duration.String(), "--payload-size", o.PayloadSize,
		"--log-format", "text"}
	if !on {
		return append(args, "--metrics-addr", "", "--sample-interval", "0"), ""
	}
	addr := freeAddr()
	return append(args, "--metrics-addr", addr, "--sample-interval", "100ms"), addr
}

// addIperf adds the iperf3 case and starts its server, unless iperf3 is
// missing (the case is then skipped).
func addIperf(ctx context.Context, o options, start startFunc, add addFunc) error {
	iperf := add(caseIperf, "iperf3", false, "")
	if missing(iperf, o) != nil {
		return nil
	}
	port := freePort()
	ip, err := start("iperf3-server", nil, "iperf3", "-s", "-B", "127.0.0.1", "-p", port)
	if err != nil {
		return err
	}
	iperf.peers = []*proc{ip}
	if err := waitTCP(ctx, "127.0.0.1:"+port); err != nil {
		return fmt.Errorf("iperf3 server: %w", err)
	}
	secs := fmt.Sprintf("%g", o.Duration.Seconds())
	iperf.cmd = []string{"iperf3", "-c", "127.0.0.1", "-p", port, "-t", secs, "-J"}
	return nil
}

// addHops adds the relayed cases and starts their hops in front of the
// instrumented server: bp-relay in stream mode, HAProxy and socat (each of
// the last two skipped when it is not installed).
func addHops(ctx context.Context, o options, bin string, srvOn serverAddrs, start startFunc, add addFunc) error {
	relayHTTP, relayTCP := freeAddr(), freeAddr()
	rp, err := start("bp-relay", nil, filepath.Join(bin, "bp-relay"), "--http-addr", relayHTTP, "--tcp-addr", relayTCP,
		"--upstream", "tcp://"+srvOn.tcp, "--buffer", "0", "--sample-interval", "100ms", "--log-format", "text")
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, rp, "http://"+relayHTTP+"/healthz"); err != nil {
		return err
	}
	relay := add(caseRelay, "", true, "tcp://"+relayTCP)
	relay.cmd = append(relay.cmd, "--run-id", "relay")
	relay.peers = []*proc{rp, srvOn.p}

	haproxy := add(caseHAProxy, "haproxy", true, "")
	cfg := filepath.Join(o.Deploy, "haproxy", "haproxy-tcp.cfg")
	if _, err := os.Stat(cfg); err != nil && haproxy.skipped == "" {
		haproxy.skipped = "no " + cfg
	}
	if missing(haproxy, o) == nil {
		listen, stats := freeAddr(), freeAddr()
		env := []string{"BP_HAPROXY_LISTEN=" + listen, "BP_HAPROXY_UPSTREAM=" + srvOn.tcp, "BP_HAPROXY_STATS=" + stats}
		hp, err := start("haproxy", env, "haproxy", "-f", cfg, "-db")
		if err != nil {
			return err
		}
		if err := waitHTTP(ctx, hp, "http://"+stats+"/metrics"); err != nil {
			return err
		}
		haproxy.cmd, haproxy.metricsAddr = clientArgs(o, bin, "tcp://"+listen, true)
		haproxy.peers = []*proc{hp, srvOn.p}
	}

	socat := add(caseSocat, "socat", true, "")
	if missing(socat, o) == nil {
		port := freePort()
		sp, err := start("socat", nil, "socat", "-b", "65536", "TCP-LISTEN:"+port+",bind=127.0.0.1,reuseaddr,fork", "TCP:"+srvOn.tcp)
		if err != nil {
			return err
		}
		socat.peers = []*proc{sp, srvOn.p}
		if err := waitTCP(ctx, "127.0.0.1:"+port); err != nil {
			return fmt.Errorf("socat: %w", err)
		}
		socat.cmd, socat.metricsAddr = clientArgs(o, bin, "tcp://127.0.0.1:"+port, true)
	}
	return nil
}

// runRounds runs every case once per round, in turn, the order reversed
// every other round: a case leaves the machine in some state for the next
// (a run of the Xeon VM had "bp tcp", always right after iperf3, 5% behind
// "instrumentation off" in all 7 rounds, and level with it in a run that
// left iperf3 out), and reversing puts each case after each of its two
// neighbours alike.
func runRounds(ctx context.Context, o options, res *Result, srvOn serverAddrs, log io.Writer) error {
	for round := 1; round <= o.Rounds; round++ {
		for _, c := range roundOrder(res.Cases, round) {
			if c.skipped != "" {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if o.Verbose && round == 1 {
				fmt.Fprintf(log, "bench: %s: %s\n", c.name, shellJoin(c.cmd))
			}
			scrapeURLs := []string{}
			if c.instrumented {
				srv := srvOn.http
				if c.serverHTTP != "" {
					srv = c.serverHTTP
				}
				scrapeURLs = append(scrapeURLs, "http://"+c.metricsAddr+"/metrics", "http://"+srv+"/metrics")
			}
			rate, cpu, err := runCase(ctx, c, scrapeURLs)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, c.name, err)
			}
			c.rates = append(c.rates, rate)
			c.cpu = append(c.cpu, cpu)
			if o.Verbose {
				fmt.Fprintf(log, "bench: round %d  %-30s %8.1f MB/s %6.3f CPU s/GB\n", round, c.name, rate/1e6, cpu)
			}
		}
		if res.Cost != nil {
			if err := res.Cost.runRound(ctx, round); err != nil {
				return fmt.Errorf("round %d: %w", round, err)
			}
		}
		fmt.Fprintf(log, "bench: round %d of %d done (load average %s)\n", round, o.Rounds, loadAvg())
	}
	return nil
}

// roundOrder is the order of the cases in round (from 1): as listed in odd
// rounds, reversed in even ones.
func roundOrder(cases []*benchCase, round int) []*benchCase {
	if round%2 == 1 {
		return cases
	}
	rev := slices.Clone(cases)
	slices.Reverse(rev)
	return rev
}

// selected reports whether name contains one of only's comma-separated
// words; an empty only selects every case.
func selected(name, only string) bool {
	if only == "" {
		return true
	}
	for _, w := range strings.Split(only, ",") {
		if w != "" && strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// missing marks c skipped when its tool is not installed.
func missing(c *benchCase, o options) error {
	if c.skipped != "" {
		return errors.New(c.skipped)
	}
	if c.tool == "" {
		return nil
	}
	if _, err := exec.LookPath(c.tool); err != nil {
		c.skipped = c.tool + " not installed (scripts/install-test-deps installs it)"
		return errors.New(c.skipped)
	}
	return nil
}

type serverAddrs struct {
	http, tcp, grpc string
	p               *proc
}

func startServer(ctx context.Context, start func(string, []string, ...string) (*proc, error), bin, name, sample string) (serverAddrs, error) {
	a := serverAddrs{http: freeAddr(), tcp: freeAddr(), grpc: freeAddr()}
	p, err := start(name, nil, filepath.Join(bin, "bp-server"), "--http-addr", a.http, "--tcp-addr", a.tcp, "--grpc-addr", a.grpc,
		"--sample-interval", sample, "--log-interval", "0", "--log-format", "text")
	if err != nil {
		return a, err
	}
	a.p = p
	return a, waitHTTP(ctx, p, "http://"+a.http+"/healthz")
}

// runCase runs c once and returns its throughput in bytes per second and
// the CPU seconds per GB it cost (the client's rusage and the peers'
// /proc times over the run), scraping urls every second meanwhile.
func runCase(ctx context.Context, c *benchCase, urls []string) (rate, cpuPerGB float64, err error) {
	before, err := peersCPU(c.peers)
	if err != nil {
		return 0, 0, err
	}
	stopScrape := startScraping(ctx, urls, c.scrapeEvery)
	cmd := exec.CommandContext(ctx, c.cmd[0], c.cmd[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	stopScrape()
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %s", err, lastLines(stderr.String(), 5))
	}
	// Let the peers finish the connection (socat's fork exits and is
	// reaped) before their times are read.
	time.Sleep(200 * time.Millisecond)
	after, err := peersCPU(c.peers)
	if err != nil {
		return 0, 0, err
	}
	rate, moved, err := parseOutput(c.name, stdout.Bytes())
	if err != nil {
		return 0, 0, err
	}
	cpu := rusageCPU(cmd.ProcessState) + after - before
	return rate, cpu.Seconds() / (moved / 1e9), nil
}

// startScraping scrapes urls every interval (0: every second; no urls:
// nothing) until the returned stop is called; stop returns once the
// scraping has ended.
func startScraping(ctx context.Context, urls []string, every time.Duration) (stop func()) {
	if len(urls) == 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		scrape(ctx, urls, every, done)
	}()
	return func() { close(done); wg.Wait() }
}

// scrape GETs urls every interval (0: every second) until stop is closed.
func scrape(ctx context.Context, urls []string, every time.Duration, stop <-chan struct{}) {
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			for _, u := range urls {
				get(ctx, u)
			}
		}
	}
}

// parseOutput reads the throughput and the bytes moved from iperf3's or
// bp-client's JSON.
func parseOutput(name string, stdout []byte) (rate, moved float64, err error) {
	if name == caseIperf {
		var out struct {
			End struct {
				SumSent struct {
					Bytes         float64 `json:"bytes"`
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_sent"`
			} `json:"end"`
		}
		if err := json.Unmarshal(stdout, &out); err != nil || out.End.SumSent.BitsPerSecond <= 0 || out.End.SumSent.Bytes <= 0 {
			return 0, 0, fmt.Errorf("iperf3 output: %v: %s", err, lastLines(string(stdout), 5))
		}
		return out.End.SumSent.BitsPerSecond / 8, out.End.SumSent.Bytes, nil
	}
	var sum struct {
		BytesWritten        float64 `json:"bytes_written"`
		WriteBytesPerSecond float64 `json:"write_bytes_per_second"`
	}
	if err := json.Unmarshal(stdout, &sum); err != nil || sum.WriteBytesPerSecond <= 0 || sum.BytesWritten <= 0 {
		return 0, 0, fmt.Errorf("bp-client output: %v: %s", err, lastLines(string(stdout), 5))
	}
	return sum.WriteBytesPerSecond, sum.BytesWritten, nil
}

func get(ctx context.Context, url string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// WriteTable prints each case's median throughput and CPU seconds per GB,
// then the ratios, with the spread over rounds and the targets, and where
// and under what load it ran: everything docs/BENCHMARKS.md quotes.
func (r *Result) WriteTable(w io.Writer) {
	o := r.Options
	fmt.Fprintf(w, "\n%d round(s) of %s per case, payload %s, loopback; medians over rounds\n", o.Rounds, o.Duration, o.PayloadSize)
	fmt.Fprintf(w, "machine: %s\n", machine())
	load := r.Load
	if load == "" {
		load = "none added (-load off)"
	}
	fmt.Fprintf(w, "background load: %s; load average %s before the rounds, %s after\n\n", load, r.LoadBefore, r.LoadAfter)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tMB/s\tmin\tmax\tCPU s/GB\tmin\tmax\t")
	// Skipped cases are listed after the table, by reason, so that a long
	// reason does not widen its columns.
	var reasons []string
	skipped := map[string][]string{}
	for _, c := range r.Cases {
		if c.skipped != "" {
			if skipped[c.skipped] == nil {
				reasons = append(reasons, c.skipped)
			}
			skipped[c.skipped] = append(skipped[c.skipped], c.name)
			continue
		}
		if len(c.rates) == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.3f\t%.3f\t%.3f\t\n", c.name, median(c.rates)/1e6, slices.Min(c.rates)/1e6, slices.Max(c.rates)/1e6,
			median(c.cpu), slices.Min(c.cpu), slices.Max(c.cpu))
	}
	tw.Flush()
	fmt.Fprintln(w, "(CPU s/GB: user + system seconds of the client and of every process the stream passes, per 10^9 bytes)")
	for _, why := range reasons {
		fmt.Fprintf(w, "skipped, %s: %s\n", why, strings.Join(skipped[why], "; "))
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ratio\tmedian\tmin\tmax\ttarget\t")
	for _, q := range append(slices.Clone(ratios), r.Extra...) {
		per := r.perRound(q)
		if len(per) == 0 {
			fmt.Fprintf(tw, "%s\tn/a\t\t\t\t\n", q.name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%s\t\n", q.name, median(per), slices.Min(per), slices.Max(per), q.verdict(median(per)))
	}
	tw.Flush()
	if r.Cost != nil {
		r.Cost.write(w, o, r.lookup(caseTCP))
	}
	r.writeAmplified(w)
}

// perRound is q's ratio in each round both its cases ran.
func (r *Result) perRound(q ratio) []float64 {
	num, den := r.lookup(q.num), r.lookup(q.den)
	if num == nil || den == nil {
		return nil
	}
	a, b := num.rates, den.rates
	if q.cpu {
		a, b = num.cpu, den.cpu
	}
	var per []float64
	for i := range min(len(a), len(b)) {
		per = append(per, a[i]/b[i])
	}
	return per
}

// verdict is the target column for a median m.
func (q ratio) verdict(m float64) string {
	switch {
	case q.target == 0:
		return "-"
	case q.cpu && m > q.target:
		return fmt.Sprintf("<= %.2f MISSED", q.target)
	case q.cpu:
		return fmt.Sprintf("<= %.2f met", q.target)
	case m < q.target:
		return fmt.Sprintf(">= %.2f MISSED", q.target)
	}
	return fmt.Sprintf(">= %.2f met", q.target)
}

// CPU is a case's median CPU seconds per GB (0: did not run).
func (r *Result) CPU(name string) float64 {
	c := r.lookup(name)
	if c == nil || len(c.cpu) == 0 {
		return 0
	}
	return median(c.cpu)
}

// Rate is a case's median throughput in bytes per second (0: did not run).
func (r *Result) Rate(name string) float64 {
	c := r.lookup(name)
	if c == nil || len(c.rates) == 0 {
		return 0
	}
	return median(c.rates)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// proc is one program bench started; it is stopped by its pid only.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

type procSet struct{ procs []*proc }

func (s *procSet) start(dir, name string, env []string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	s.procs = append(s.procs, p)
	return p, nil
}

// stopAll sends SIGTERM to every process started, in reverse order, and
// SIGKILL to any still running after 5 s.
func (s *procSet) stopAll() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) failed(what string) error {
	b, _ := os.ReadFile(p.log)
	return fmt.Errorf("%s %s: %s", p.name, what, lastLines(string(b), 10))
}

func waitHTTP(ctx context.Context, p *proc, url string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if p.exited() {
			return p.failed("exited before it was ready")
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p.failed("not ready after 15s at " + url)
}

func waitTCP(ctx context.Context, addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s after 15s", addr)
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func freePort() string {
	_, port, _ := net.SplitHostPort(freeAddr())
	return port
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], " | ")
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			a = "'" + a + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
