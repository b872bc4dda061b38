// Package e2e runs the real binaries (bp-server, bp-client, and any other
// command under cmd/) as separate processes on loopback and checks what they
// report, print and export. It holds no production code: everything is in
// _test.go files.
//
// TestMain builds every command once into a temporary directory (with -race
// when the tests run with -race, so the binaries are race-checked too). Tests
// start processes through the helpers below, which clean up after themselves:
//
//	srv := startServer(t, "--pause-after", "1s", "--pause-for", "2s")
//	sum, code, _ := runClient(t, "--target", srv.TCPURL(), "--count", "100", "--duration", "0")
//	m := scrape(t, srv.MetricsURL())
//	m.Value(t, "bp_bytes_read_total", "protocol", "tcp")
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/go-backpressure/go-backpressure/pkg/report"
)

// binDir holds the binaries TestMain built.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bp-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/go-backpressure/go-backpressure/cmd/...")
	build := exec.Command(goBin, args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the binaries failed:", err)
		return 1
	}
	// The lab's delay line helper is built without the race detector
	// whatever the tests are built with: a raced line wrote packets 2.2 ms
	// late on average against 0.34 (netlab's lineProc says more).
	line := exec.Command(goBin, "build", "-o", filepath.Join(dir, "delayline"), "github.com/go-backpressure/go-backpressure/scripts/delayline")
	line.Stdout, line.Stderr = os.Stderr, os.Stderr
	if err := line.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the delay line helper failed:", err)
		return 1
	}
	binDir = dir
	return m.Run()
}

// binary is the path of a command TestMain built, e.g. binary("bp-server").
func binary(name string) string { return filepath.Join(binDir, name) }

// Proc is one binary running as a real process for the length of a test.
// Its stderr is kept whole and, line by line, parsed as JSON logs (start
// binaries with --log-format json to use WaitLog); its stdout is kept whole.
type Proc struct {
	Name string
	cmd  *exec.Cmd

	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	logs   []map[string]any

	done     chan struct{} // closed once the process has exited
	exitCode int           // valid after done; -1 when killed by a signal
}

// lockedWriter lets exec copy stdout into the Proc under its lock.
type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// testEnv is the environment of every process: this one's, without BP_*
// settings and PORT (which would change what the binaries do), plus extra.
func testEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "BP_") || strings.HasPrefix(kv, "PORT=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// startProc starts binary name with env (KEY=value, added to a clean
// environment) and args. The process is killed (by pid) and reaped when the
// test ends; a data race reported by a -race binary fails the test.
func startProc(t testing.TB, name string, env []string, args ...string) *Proc {
	t.Helper()
	return startCmd(t, name, exec.Command(binary(name), args...), env)
}

// startCmd is startProc of a command of the test's making (the binary
// under prlimit, which execs it: the same pid).
func startCmd(t testing.TB, name string, cmd *exec.Cmd, env []string) *Proc {
	t.Helper()
	p := &Proc{Name: name, done: make(chan struct{}), cmd: cmd}
	p.cmd.Env = testEnv(env)
	p.cmd.Stdout = lockedWriter{&p.mu, &p.stdout}
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(errPipe)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Bytes()
			var rec map[string]any
			jerr := json.Unmarshal(line, &rec)
			p.mu.Lock()
			p.stderr.Write(line)
			p.stderr.WriteByte('\n')
			if jerr == nil {
				p.logs = append(p.logs, rec)
			}
			p.mu.Unlock()
		}
		err := p.cmd.Wait()
		p.exitCode = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.exitCode = ee.ExitCode()
		} else if err != nil {
			p.exitCode = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("%s (pid %d) did not exit after SIGKILL", name, p.cmd.Process.Pid)
			}
		}
		if s := p.Stderr(); strings.Contains(s, "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race:\n%s", name, s)
		}
	})
	return p
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stdout is everything the process printed on stdout so far.
func (p *Proc) Stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// Stderr is everything the process printed on stderr so far.
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// Logs returns the JSON log records so far whose msg is msg ("" for all).
func (p *Proc) Logs(msg string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, l := range p.logs {
		if msg == "" || l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitLog waits up to timeout for a JSON log record with this msg and
// returns it. It fails the test when the process exits first or time is up.
func (p *Proc) WaitLog(t testing.TB, msg string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if l := p.Logs(msg); len(l) > 0 {
			return l[0]
		}
		if p.Exited() {
			// The exit may race with the last lines: look once more.
			if l := p.Logs(msg); len(l) > 0 {
				return l[0]
			}
			t.Fatalf("%s exited (status %d) before logging %q; stderr:\n%s", p.Name, p.exitCode, msg, p.Stderr())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within %s; stderr:\n%s", p.Name, msg, timeout, p.Stderr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s to %s: %v", sig, p.Name, err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// status (-1 when a signal killed it). When time is up it fails the test
// (the cleanup kills the process).
func (p *Proc) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.exitCode
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s; stderr:\n%s", p.Name, timeout, p.Stderr())
		return 0
	}
}

// Server is a running bp-server.
type Server struct {
	*Proc
	HTTPAddr string // host:port of /ws, /metrics, /healthz
	TCPAddr  string // host:port of the raw TCP sink ("" when off)
	GRPCAddr string // host:port of the gRPC service ("" when off)
}

// startServer starts bp-server on loopback with JSON logs and free ports
// (--http-addr, --tcp-addr and --grpc-addr 127.0.0.1:0, --log-format json; args
// come after these, so they can override them) and waits until it listens.
func startServer(t testing.TB, args ...string) *Server {
	t.Helper()
	return startServerEnv(t, nil, args...)
}

// startServerEnv is startServer with extra environment variables.
func startServerEnv(t testing.TB, env []string, args ...string) *Server {
	t.Helper()
	all := append([]string{"--http-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--log-format", "json"}, args...)
	p := startProc(t, "bp-server", env, all...)
	l := p.WaitLog(t, "bp-server listening", 20*time.Second)
	s := &Server{Proc: p}
	s.HTTPAddr, _ = l["http"].(string)
	s.TCPAddr, _ = l["tcp"].(string)
	s.GRPCAddr, _ = l["grpc"].(string)
	if s.HTTPAddr == "" {
		t.Fatalf("bp-server logged no http address: %v", l)
	}
	return s
}

// TCPURL is the --target for the raw TCP sink.
func (s *Server) TCPURL() string { return "tcp://" + s.TCPAddr }

// WSURL is the --target for the WebSocket sink.
func (s *Server) WSURL() string { return "ws://" + s.HTTPAddr + "/ws" }

// MetricsURL is the server's /metrics.
func (s *Server) MetricsURL() string { return "http://" + s.HTTPAddr + "/metrics" }

// clientDefaults come before a test's own client args: a JSON report on
// stdout, JSON logs, no live display, no metrics listener.
var clientDefaults = []string{"--output", "json", "--log-format", "json", "--progress", "off", "--metrics-addr", ""}

// runClient runs bp-client to its end (at most a minute) with args after
// clientDefaults, and returns its report (zero when it printed none), exit
// status and stderr.
func runClient(t testing.TB, args ...string) (report.Summary, int, string) {
	t.Helper()
	return runClientEnv(t, nil, args...)
}

// runClientEnv is runClient with extra environment variables.
func runClientEnv(t testing.TB, env []string, args ...string) (report.Summary, int, string) {
	t.Helper()
	p := startProc(t, "bp-client", env, append(append([]string{}, clientDefaults...), args...)...)
	code := p.Wait(t, time.Minute)
	return parseReport(t, p), code, p.Stderr()
}

// Client is a bp-client running in the background with a metrics listener.
type Client struct {
	*Proc
	MetricsURL string // its /metrics
}

// startClient starts bp-client in the background with clientDefaults,
// --metrics-addr 127.0.0.1:0 and --linger 2s (so its metrics can be scraped
// after the run), then args; it waits until the metrics listener is up.
func startClient(t testing.TB, args ...string) *Client {
	t.Helper()
	all := append(append([]string{}, clientDefaults...), "--metrics-addr", "127.0.0.1:0", "--linger", "2s")
	p := startProc(t, "bp-client", nil, append(all, args...)...)
	l := p.WaitLog(t, "serving metrics", 20*time.Second)
	addr, _ := l["addr"].(string)
	return &Client{Proc: p, MetricsURL: "http://" + addr + "/metrics"}
}

// WaitLinger waits until the run is over and the client lingers (its
// report is printed and its metrics final).
func (c *Client) WaitLinger(t testing.TB, timeout time.Duration) {
	t.Helper()
	c.WaitLog(t, "lingering so scrapers see the final values", timeout)
}

// Finish waits for the client to exit and returns its report and status.
// A client that already lingers is told to stop lingering (SIGINT, which
// after the run does not change its exit status), so tests need not wait.
func (c *Client) Finish(t testing.TB, timeout time.Duration) (report.Summary, int) {
	t.Helper()
	if len(c.Logs("lingering so scrapers see the final values")) > 0 && !c.Exited() {
		_ = c.cmd.Process.Signal(syscall.SIGINT)
	}
	code := c.Wait(t, timeout)
	return parseReport(t, c.Proc), code
}

// parseReport decodes the --output json report of an exited client.
func parseReport(t testing.TB, p *Proc) report.Summary {
	t.Helper()
	var s report.Summary
	out := strings.TrimSpace(p.Stdout())
	if out == "" {
		return s
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("bp-client report is not JSON: %v\nstdout:\n%s\nstderr:\n%s", err, out, p.Stderr())
	}
	return s
}

// Scrape is one scrape of a /metrics endpoint, by family name.
type Scrape map[string]*dto.MetricFamily

// scrape fetches and parses a /metrics endpoint (text format).
func scrape(t testing.TB, url string) Scrape {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: HTTP %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return Scrape(fams)
}

// Get looks up a sample by name and label pairs ("protocol", "tcp"); the
// series must carry exactly those labels. A histogram's _sum and _count are
// found under their own names. ok is false when there is no such series.
func (s Scrape) Get(name string, labelPairs ...string) (value float64, ok bool) {
	if len(labelPairs)%2 != 0 {
		panic("Scrape.Get: odd number of label arguments")
	}
	fam, suffix := s[name], ""
	if fam == nil {
		for _, suf := range []string{"_sum", "_count"} {
			if f := s[strings.TrimSuffix(name, suf)]; f != nil && strings.HasSuffix(name, suf) {
				fam, suffix = f, suf
			}
		}
	}
	if fam == nil {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		if !labelsMatch(m.GetLabel(), labelPairs) {
			continue
		}
		switch {
		case suffix == "_sum" && m.Histogram != nil:
			return m.GetHistogram().GetSampleSum(), true
		case suffix == "_count" && m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// Value is Get that fails the test when the series is missing.
func (s Scrape) Value(t testing.TB, name string, labelPairs ...string) float64 {
	t.Helper()
	v, ok := s.Get(name, labelPairs...)
	if !ok {
		t.Fatalf("no series %s%v in the scrape", name, labelPairs)
	}
	return v
}

// Sum adds every series of a family (all label values), e.g. all reasons of
// bp_connection_errors_total.
func (s Scrape) Sum(name string) float64 {
	var total float64
	for _, m := range s[name].GetMetric() {
		total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return total
}

// Labelled lists a family's non-zero series by one label's value
// (reason=3), for messages that say what a run counted.
func (s Scrape) Labelled(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range s[name].GetMetric() {
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		if v == 0 {
			continue
		}
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				out[l.GetValue()] += v
			}
		}
	}
	return out
}

// lastLines is the end of a log, for failure messages.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func labelsMatch(have []*dto.LabelPair, want []string) bool {
	if len(have) != len(want)/2 {
		return false
	}
	for i := 0; i < len(want); i += 2 {
		found := false
		for _, l := range have {
			if l.GetName() == want[i] && l.GetValue() == want[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// eventually polls cond every 50 ms until it returns "" (success) or
// timeout passes, then fails the test with cond's last message.
func eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a loopback port that was free a moment ago (for tests
// that need a closed port or must pass a port number, e.g. PORT).
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// needTool returns the path of an external tool. Without it the test skips
// with an install hint, or fails in CI (CI=true), where
// scripts/install-test-deps must have installed it.
func needTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not installed (apt-get install %s, or run scripts/install-test-deps)", name, debianPackage)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
