// Command connmem measures bp-server's and bp-client's memory per slow
// connection, for TCP and WebSocket: it starts one bp-server, opens N
// connections with one bp-client that writes one 1 KiB message a second on
// each, and, once all are open, reads both processes' /metrics a few times:
// resident memory, Go heap in use, goroutine stacks in use, goroutines,
// how long each scrape took and the CPU each process used between the
// first and the last (process_cpu_seconds_total, in cores; its test checks
// it against the kernel's /proc/PID/stat). It prints the
// server's growth over the idle server divided by N and the client's whole
// RSS divided by N (an upper bound: it includes the client's base of about
// 10 MB), medians of the samples. Then it ends the client with SIGTERM and the server once
// every connection is closed, and says how long each took to exit, how
// many connections failed and how many errors the server counted: the
// 100,000-connection target of issue 16.
//
//	go run ./scripts/connmem                        # 2,000 connections, tcp and websocket
//	go run ./scripts/connmem -connections 100000 -protocols tcp
//
// More than about 28,000 connections to one server port need several
// source addresses (-source-addrs, bp-client --source-addrs; on loopback
// 127.0.0.2 to 127.0.0.9 all reach 127.0.0.1). It raises RLIMIT_NOFILE
// (both processes inherit it) to what N needs. Only processes it started
// are stopped, by pid. See docs/BENCHMARKS.md.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/proccpu"
)

func main() {
	var o opts
	flag.IntVar(&o.conns, "connections", 2000, "slow connections to open")
	protocols := flag.String("protocols", "tcp,websocket", "comma-separated: tcp, websocket")
	flag.StringVar(&o.bin, "bin", "", "directory with bp-server and bp-client (default: build them)")
	flag.IntVar(&o.samples, "samples", 6, "samples taken once every connection is open, 1 s apart")
	flag.StringVar(&o.source, "source-addrs", "127.0.0.2-127.0.0.9", "bp-client --source-addrs (empty: the kernel picks)")
	flag.DurationVar(&o.settle, "settle", 2*time.Second, "wait this long after every connection is open before sampling: past 2m a process's memory is what it keeps, after the runtime's forced collection (a client's heap grows to twice its live size between collections)")
	flag.DurationVar(&o.duration, "duration", 0, "bp-client --duration: the run ends by itself and every connection must close cleanly (0: the run is ended with SIGTERM to client and server at once, timed)")
	flag.Parse()
	if o.duration > 0 && o.settle >= o.duration {
		fmt.Fprintf(os.Stderr, "connmem: -settle %s must be shorter than -duration %s\n", o.settle, o.duration)
		os.Exit(2)
	}
	// Client and server each hold one socket per connection.
	if err := raiseNoFile(uint64(o.conns + 500)); err != nil {
		fmt.Fprintln(os.Stderr, "connmem:", err)
		os.Exit(1)
	}
	if err := run(o, strings.Split(*protocols, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "connmem:", err)
		os.Exit(1)
	}
}

type opts struct {
	conns, samples   int
	bin, source      string
	duration, settle time.Duration
}

// raiseNoFile lifts RLIMIT_NOFILE to at least n (the hard limit too, which
// root may), so client and server, which inherit it, can hold every socket.
func raiseNoFile(n uint64) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return err
	}
	if rl.Cur >= n {
		return nil
	}
	want := rl
	want.Cur, want.Max = n, max(rl.Max, n)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		// Without CAP_SYS_RESOURCE (a container) the hard limit stays:
		// say how many connections it allows.
		return fmt.Errorf("raise RLIMIT_NOFILE to %d: %w (hard limit %d: at most about %d connections; raise ulimit -Hn or run with CAP_SYS_RESOURCE)",
			n, err, rl.Max, rl.Max-500)
	}
	return nil
}

// figures are the metrics compared, by name.
var figures = []struct{ name, metric string }{
	{"RSS", "process_resident_memory_bytes"},
	{"heap in use", "go_memstats_heap_inuse_bytes"},
	{"stacks in use", "go_memstats_stack_inuse_bytes"},
	{"goroutines", "go_goroutines"},
}

// result is one protocol's figures.
type result struct {
	server, client   []float64 // per connection, as figures
	scrapeS, scrapeC time.Duration
	cpuS, cpuC       float64 // cores busy between the first and the last sample
	kernS, kernC     float64 // the same from the kernel's /proc/PID/stat (TestMeasure's reference)
	// lastCPU is the server's and the client's CPU seconds at the last
	// sample, as the metric said and as the kernel did.
	lastCPU      [2]struct{ metric, kernel float64 }
	opened       time.Duration // until every connection was open
	termC, termS time.Duration // SIGTERM to exit
	exitC, exitS string
	failed       int64  // the client report's failed_connections
	clientErr    string // its error, if any
	serverErrs   float64
}

func run(o opts, protocols []string) error {
	dir, err := os.MkdirTemp("", "connmem")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.bin == "" {
		o.bin = dir
		fmt.Fprintln(os.Stderr, "connmem: building bp-server, bp-client")
		b := exec.Command("go", "build", "-o", o.bin, "./cmd/bp-server", "./cmd/bp-client")
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	fmt.Printf("%d slow connections (--rate 1 --payload-size 1KiB, --source-addrs %q), medians of %d samples taken from %s after all were open\n", o.conns, o.source, o.samples, o.settle)
	fmt.Printf("server: growth over the idle server per connection; client: whole RSS per connection\n\n")
	fmt.Printf("%-10s %-7s %9s %9s %10s %11s %10s %9s\n", "protocol", "side", "RSS KiB", "heap KiB", "stacks KiB", "goroutines", "scrape ms", "CPU cores")
	for _, proto := range protocols {
		res, err := measure(dir, o, proto)
		if err != nil {
			return fmt.Errorf("%s: %w", proto, err)
		}
		for _, side := range []struct {
			name string
			v    []float64
			d    time.Duration
			cpu  float64
		}{{"server", res.server, res.scrapeS, res.cpuS}, {"client", res.client, res.scrapeC, res.cpuC}} {
			fmt.Printf("%-10s %-7s %9.1f %9.1f %10.1f %11.2f %10.1f %9.3f\n", proto, side.name, side.v[0]/1024, side.v[1]/1024, side.v[2]/1024, side.v[3], float64(side.d.Microseconds())/1000, side.cpu)
		}
		fmt.Printf("%-10s all open after %s; client: exit %s after its end (SIGTERM or --duration) (%s), %d failed connections%s; server: %v errors, SIGTERM to exit %s (%s)\n",
			proto, res.opened.Round(time.Millisecond), res.termC.Round(time.Millisecond), res.exitC, res.failed, errNote(res.clientErr), res.serverErrs, res.termS.Round(time.Millisecond), res.exitS)
	}
	return nil
}

func errNote(s string) string {
	if s == "" {
		return ""
	}
	return " (error: " + s + ")"
}

// measure runs one protocol: server, client, samples, then the ends.
func measure(dir string, o opts, proto string) (*result, error) {
	httpAddr, tcpAddr, clientAddr := freeAddr(), freeAddr(), freeAddr()
	srv, err := start(dir, "bp-server-"+proto, nil, filepath.Join(o.bin, "bp-server"), "--http-addr", httpAddr, "--tcp-addr", tcpAddr, "--grpc-addr", "",
		"--log-interval", "0", "--max-connections", strconv.Itoa(o.conns+100))
	if err != nil {
		return nil, err
	}
	defer stop(srv)
	metrics := "http://" + httpAddr + "/metrics"
	var base map[string]float64
	for i := 0; ; i++ {
		if base, _, err = scrape(metrics); err == nil {
			break
		}
		if i == 100 {
			return nil, fmt.Errorf("server not up: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	target := "tcp://" + tcpAddr
	if proto == "websocket" {
		target = "ws://" + httpAddr + "/ws"
	}
	var report strings.Builder
	began := time.Now()
	cli, err := start(dir, "bp-client-"+proto, &report, filepath.Join(o.bin, "bp-client"), "--target", target,
		"--connections", strconv.Itoa(o.conns), "--rate", "1", "--payload-size", "1KiB", "--duration", clientDuration(o),
		"--metrics-addr", clientAddr, "--sample-interval", "0", "--progress", "off", "--output", "json", "--source-addrs", o.source)
	if err != nil {
		return nil, err
	}
	defer stop(cli)
	res := &result{}
	if err := waitOpen(metrics, proto, o.conns, cli); err != nil {
		return nil, err
	}
	res.opened = time.Since(began)
	time.Sleep(o.settle) // every connection has read and acked a few messages
	pids := [2]int{srv.Process.Pid, cli.Process.Pid}
	if err := sample(res, o, proto, base, metrics, "http://"+clientAddr+"/metrics", pids); err != nil {
		return nil, err
	}
	if o.duration <= 0 {
		// Both at once, as a shutdown would: each must exit within 10 s.
		done := make(chan struct{})
		go func() { res.termS, res.exitS = stopTimed(srv); close(done) }()
		res.termC, res.exitC = stopTimed(cli)
		<-done
	} else {
		res.termC, res.exitC = waitExit(cli, began.Add(o.duration))
	}
	var sum struct {
		FailedConns int64  `json:"failed_connections"`
		Error       string `json:"error"`
	}
	if err := json.Unmarshal([]byte(report.String()), &sum); err != nil {
		res.clientErr = "no report: " + err.Error()
	}
	res.failed, res.clientErr = sum.FailedConns, res.clientErr+sum.Error
	errs := func(m map[string]float64) float64 {
		t := 0.0
		for k, v := range m {
			if strings.HasPrefix(k, "bp_errors_total") {
				t += v
			}
		}
		return t
	}
	for deadline := time.Now().Add(time.Minute); o.duration > 0 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if m, _, err := scrape(metrics); err == nil && m[`bp_connections{protocol="`+proto+`"}`] == 0 {
			res.serverErrs = errs(m) - errs(base)
			break
		}
	}
	if o.duration > 0 {
		res.termS, res.exitS = stopTimed(srv)
	}
	return res, nil
}

// waitOpen waits until the server counts n open connections.
func waitOpen(metrics, proto string, n int, cli *exec.Cmd) error {
	open := `bp_connections{protocol="` + proto + `"}`
	deadline := time.Now().Add(5 * time.Minute)
	for {
		m, _, err := scrape(metrics)
		if err == nil && int(m[open]) >= n {
			return nil
		}
		if cli.ProcessState != nil {
			return fmt.Errorf("the client exited with %v connections open", m[open])
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %v of %d connections open after 5 minutes", m[open], n)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// sample scrapes server and client o.samples times, 1 s apart, and keeps
// the medians in res; pids are the server's and the client's, whose CPU
// time it also reads from the kernel at each scrape.
func sample(res *result, o opts, proto string, base map[string]float64, server, client string, pids [2]int) error {
	open := `bp_connections{protocol="` + proto + `"}`
	srvPer, cliPer := make([][]float64, len(figures)), make([][]float64, len(figures))
	var took [2][]time.Duration
	const cpu = "process_cpu_seconds_total"
	var first, last struct {
		at     time.Time
		server float64
		client float64
		kern   [2]float64
	}
	for i := range o.samples {
		// Each process's kernel count right after its own scrape.
		m, d, err := scrape(server)
		if err == nil {
			last.kern[0], err = procCPU(pids[0])
		}
		if err != nil {
			return err
		}
		if int(m[open]) < o.conns {
			return fmt.Errorf("connections dropped to %v", m[open])
		}
		c, dc, err := scrape(client)
		if err == nil {
			last.kern[1], err = procCPU(pids[1])
		}
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		took[0], took[1] = append(took[0], d), append(took[1], dc)
		last.at, last.server, last.client = time.Now(), m[cpu], c[cpu]
		if i == 0 {
			first = last
		}
		for i, f := range figures {
			srvPer[i] = append(srvPer[i], (m[f.metric]-base[f.metric])/float64(o.conns))
			cliPer[i] = append(cliPer[i], c[f.metric]/float64(o.conns))
		}
		time.Sleep(time.Second)
	}
	res.server, res.client = medians(srvPer), medians(cliPer)
	if secs := last.at.Sub(first.at).Seconds(); secs > 0 {
		res.cpuS, res.cpuC = (last.server-first.server)/secs, (last.client-first.client)/secs
		res.kernS, res.kernC = (last.kern[0]-first.kern[0])/secs, (last.kern[1]-first.kern[1])/secs
	}
	res.lastCPU[0].metric, res.lastCPU[0].kernel = last.server, last.kern[0]
	res.lastCPU[1].metric, res.lastCPU[1].kernel = last.client, last.kern[1]
	slices.Sort(took[0])
	slices.Sort(took[1])
	res.scrapeS, res.scrapeC = took[0][len(took[0])/2], took[1][len(took[1])/2]
	return nil
}

// procCPU is a process's CPU time so far in seconds, as the kernel counts
// it (proccpu.Used: /proc/PID/stat).
func procCPU(pid int) (float64, error) {
	d, err := proccpu.Used(pid)
	return d.Seconds(), err
}

func medians(per [][]float64) []float64 {
	out := make([]float64, len(per))
	for i := range per {
		slices.Sort(per[i])
		out[i] = per[i][len(per[i])/2]
	}
	return out
}

// scrape reads the unlabelled metrics by name and the labelled ones by
// name{labels} as written.
// It also returns how long the scrape took, to the last byte.
func scrape(url string) (map[string]float64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, time.Since(began), sc.Err()
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs args with its output in dir/name.log; stdout, when set,
// takes the standard output instead (bp-client's JSON report).
func start(dir, name string, stdout *strings.Builder, args ...string) (*exec.Cmd, error) {
	f, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

func clientDuration(o opts) string {
	if o.duration > 0 {
		return o.duration.String()
	}
	return "30m"
}

// waitExit waits for a process to end by itself and returns how long it
// took past end (its --duration) and how it exited.
func waitExit(cmd *exec.Cmd, end time.Time) (time.Duration, string) {
	err := cmd.Wait()
	if err != nil && cmd.ProcessState == nil {
		return 0, err.Error()
	}
	return time.Since(end), cmd.ProcessState.String()
}

// stopTimed sends SIGTERM to a process this program started and returns
// how long it took to exit and how (SIGKILL after 30 s).
func stopTimed(cmd *exec.Cmd) (time.Duration, string) {
	began := time.Now()
	stop(cmd)
	return time.Since(began), cmd.ProcessState.String()
}

// stop ends a process this program started, by its pid (once).
func stop(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}
