package web_test

// End-to-end tests of the browser client: a real headless Chromium (Debian's
// chromium, driven over the DevTools protocol with chromedp) loads /client
// from a real bp-server process and runs it against /ws, directly and
// through bp-relay. Screenshots go to artifacts/ at the repository root.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

const chromiumHint = "install Debian's chromium: apt-get install chromium (or run scripts/install-test-deps)"

// chromiumPath finds the browser. In CI (CI=true) a missing browser fails
// the test; elsewhere the test skips and says how to install it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("chromium not found; %s", chromiumHint)
	}
	t.Skipf("chromium not found; %s", chromiumHint)
	return ""
}

var (
	buildMu  sync.Mutex
	binDir   string
	binBuilt = map[string]error{}
)

// buildBinary builds ./cmd/<name> once per test binary into a temporary
// directory and returns its path.
func buildBinary(t *testing.T, name string) (string, error) {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if binDir == "" {
		dir, err := os.MkdirTemp("", "bp-web-e2e-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = dir
	}
	path := filepath.Join(binDir, name)
	err, done := binBuilt[name]
	if !done {
		out, berr := exec.Command("go", "build", "-o", path, "github.com/go-backpressure/go-backpressure/cmd/"+name).CombinedOutput()
		if berr != nil {
			err = fmt.Errorf("go build %s: %w\n%s", name, berr, out)
		}
		binBuilt[name] = err
	}
	return path, err
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// proc is a binary running as a real process; its stderr is kept and its
// JSON log lines are parsed.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs []map[string]any
	text strings.Builder
	done chan struct{}
}

// startProc starts path with args; it is stopped (SIGTERM, then SIGKILL) by
// pid when the test ends.
func startProc(t *testing.T, path string, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, nil, path, args...)
}

// startProcEnv is startProc with extra environment (KEY=value): the
// inherited BP_ variables are dropped, these are added.
func startProcEnv(t *testing.T, extraEnv []string, path string, args ...string) *proc {
	t.Helper()
	p := &proc{name: filepath.Base(path), done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BP_") && !strings.HasPrefix(kv, "PORT=") {
			env = append(env, kv)
		}
	}
	p.cmd.Env = append(env, extraEnv...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rec map[string]any
			jerr := json.Unmarshal(sc.Bytes(), &rec)
			p.mu.Lock()
			p.text.Write(sc.Bytes())
			p.text.WriteByte('\n')
			if jerr == nil {
				p.logs = append(p.logs, rec)
			}
			p.mu.Unlock()
		}
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(8 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", p.name, p.stderr())
		}
	})
	return p
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.text.String()
}

// waitLog waits for a JSON log record with this msg.
func (p *proc) waitLog(t *testing.T, msg string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, l := range p.logs {
			if l["msg"] == msg {
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			t.Fatalf("%s exited before logging %q; stderr:\n%s", p.name, msg, p.stderr())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not log %q within %s; stderr:\n%s", p.name, msg, timeout, p.stderr())
	return nil
}

// startServer starts bp-server on a free loopback port, WebSocket only, and
// returns its HTTP address.
func startServer(t *testing.T, args ...string) string {
	t.Helper()
	_, addr := startServerProc(t, args...)
	return addr
}

// startServerProc is startServer that also returns the process, whose
// log a test reads.
func startServerProc(t *testing.T, args ...string) (*proc, string) {
	t.Helper()
	path, err := buildBinary(t, "bp-server")
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{"--http-addr", "127.0.0.1:0", "--tcp-addr", "", "--grpc-addr", "", "--log-format", "json"}, args...)
	p := startProc(t, path, args...)
	rec := p.waitLog(t, "bp-server listening", 15*time.Second)
	addr, _ := rec["http"].(string)
	if addr == "" {
		t.Fatalf("bp-server listening without an http address: %v", rec)
	}
	return p, addr
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// metricValue scrapes a Prometheus text endpoint and returns one sample's
// value (series as it appears, e.g. `bp_bytes_read_total{protocol="websocket"}`).
func metricValue(ctx context.Context, url, series string) (float64, error) {
	return metricValueWith(ctx, http.DefaultClient, url, series)
}

// metricValueWith is metricValue with this HTTP client (one that trusts a
// test's certificate, for https).
func metricValueWith(ctx context.Context, client *http.Client, url, series string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("%s: no series %s", url, series)
}

const wsBytesRead = `bp_bytes_read_total{protocol="websocket"}`

// waitMetric polls until the series equals want; it fails the test if the
// value goes past want or time runs out.
func waitMetric(t *testing.T, url, series string, want float64, timeout time.Duration) {
	t.Helper()
	waitMetricWith(t, http.DefaultClient, url, series, want, timeout)
}

// waitMetricWith is waitMetric with this HTTP client.
func waitMetricWith(t *testing.T, client *http.Client, url, series string, want float64, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got float64
	var err error
	for ctx.Err() == nil {
		got, err = metricValueWith(ctx, client, url, series)
		if err == nil && got == want {
			return
		}
		if err == nil && got > want {
			t.Fatalf("%s = %.0f, more than the %.0f bytes sent", series, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s = %.0f (err %v) after %s, want exactly %.0f", series, got, err, timeout, want)
}

// browser starts a headless Chromium with the flags that keep it offline
// and quiet, plus extra, and returns a tab's context.
func browser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	exe := chromiumPath(t)
	// Not t.TempDir: Chromium's helper processes may still write to the
	// profile for a moment after the browser exits, so removal is retried.
	profile, err := os.MkdirTemp("", "bp-web-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 20; i++ {
			if err = os.RemoveAll(profile); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("leaving the browser profile %s: %v", profile, err)
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1280, 1000),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
	}
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	// Events may still arrive while the test ends; t.Logf after the end
	// panics, so logging stops first.
	var logMu sync.Mutex
	ended := false
	t.Cleanup(func() {
		logMu.Lock()
		ended = true
		logMu.Unlock()
		cancelTab()
		cancelAlloc()
	})
	// Page errors and console output end up in the test log.
	chromedp.ListenTarget(ctx, func(ev any) {
		logMu.Lock()
		defer logMu.Unlock()
		if ended {
			return
		}
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			// An uncaught exception in the page is a bug in the page.
			t.Errorf("page exception: %s", ev.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value))
			}
			t.Logf("console.%s: %s", ev.Type, strings.Join(parts, " "))
		}
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// page is the client page open in a tab.
type page struct {
	t   *testing.T
	ctx context.Context
}

// openClient loads url and waits until the page's script has run (it fills
// in the target).
func openClient(t *testing.T, ctx context.Context, url string) *page {
	t.Helper()
	var target string
	err := chromedp.Run(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible("#start", chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("target").value`, &target, chromedp.WithPollingTimeout(10*time.Second)),
	)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return &page{t: t, ctx: ctx}
}

// start fills in the form (id -> value) and presses Start.
func (p *page) start(fields map[string]string) {
	p.t.Helper()
	var actions []chromedp.Action
	for id, v := range fields {
		actions = append(actions, chromedp.SetValue("#"+id, v, chromedp.ByQuery))
	}
	actions = append(actions, chromedp.Click("#start", chromedp.ByQuery))
	if err := chromedp.Run(p.ctx, actions...); err != nil {
		p.t.Fatalf("start a run: %v", err)
	}
	var formErr string
	if err := chromedp.Run(p.ctx, chromedp.Text("#form-error", &formErr, chromedp.ByQuery)); err == nil && formErr != "" {
		p.t.Fatalf("the page refused the settings: %s", formErr)
	}
}

// eval evaluates a JavaScript expression.
func (p *page) eval(expr string, out any) {
	p.t.Helper()
	if err := chromedp.Run(p.ctx, chromedp.Evaluate(expr, out)); err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
}

// waitFor polls a JavaScript condition until it is true.
func (p *page) waitFor(what, cond string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var ok bool
		p.eval("!!("+cond+")", &ok)
		if ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	var state, summary string
	p.eval(`document.getElementById("run-state").textContent`, &state)
	p.eval(`document.getElementById("summary").textContent`, &summary)
	p.screenshot(strings.ReplaceAll(p.t.Name(), "/", "-") + "-timeout")
	p.t.Fatalf("%s: not within %s; page says %q\n%s", what, timeout, state, summary)
}

// report waits for the end of the run and returns the page's report.
func (p *page) report(timeout time.Duration) map[string]any {
	p.t.Helper()
	p.waitFor("the run to end", `window.bpReport && ["done","stopped","failed"].includes(document.getElementById("run-state").dataset.state)`, timeout)
	var rep map[string]any
	p.eval(`window.bpReport`, &rep)
	return rep
}

// screenshot saves the whole page to artifacts/<name>.png at the
// repository root, for people to look at.
func (p *page) screenshot(name string) {
	p.t.Helper()
	var png []byte
	if err := chromedp.Run(p.ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		p.t.Errorf("screenshot: %v", err)
		return
	}
	dir := filepath.Join("..", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Errorf("screenshot: %v", err)
		return
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Errorf("screenshot: %v", err)
		return
	}
	p.t.Logf("screenshot: %s", path)
}

func num(t *testing.T, rep map[string]any, key string) float64 {
	t.Helper()
	v, ok := rep[key].(float64)
	if !ok {
		t.Fatalf("report has no number %q: %v", key, rep)
	}
	return v
}

// checkCompleted asserts the page's report of a finished run: every byte
// sent was acknowledged, and the totals are what was asked for.
func checkCompleted(t *testing.T, rep map[string]any, wantBytes float64) {
	t.Helper()
	if rep["result"] != "completed" {
		t.Fatalf("run result %v (%v), want completed; report %v", rep["result"], rep["error"], rep)
	}
	if got := num(t, rep, "bytes_sent"); got != wantBytes {
		t.Errorf("page sent %.0f bytes, want %.0f", got, wantBytes)
	}
	if got := num(t, rep, "bytes_acked"); got != wantBytes {
		t.Errorf("page saw %.0f bytes acknowledged, want %.0f", got, wantBytes)
	}
}

// runBytes runs conns connections of perConn bytes each (64 KiB
// messages, as fast as the page may), waits for the end, checks the
// page's report of a completed run and returns it.
func (p *page) runBytes(perConn, conns int) map[string]any {
	p.t.Helper()
	p.start(map[string]string{
		"payload-size": "64KiB", "rate": "0", "total": strconv.Itoa(perConn),
		"total-unit": "bytes", "connections": strconv.Itoa(conns),
	})
	rep := p.report(60 * time.Second)
	checkCompleted(p.t, rep, float64(perConn*conns))
	return rep
}

// stopRun waits until both connections of a run without a total send,
// presses Stop, and returns the page's report, in which every byte sent
// must be acknowledged.
func (p *page) stopRun() map[string]any {
	t := p.t
	t.Helper()
	p.waitFor("both connections to send", `Number(document.getElementById("total-acked").dataset.value) > 0 && `+
		`document.querySelectorAll('#conns tr[data-state="sending"]').length === 2`, 10*time.Second)
	if err := chromedp.Run(p.ctx, chromedp.Click("#stop", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	rep := p.report(20 * time.Second)
	if rep["result"] != "completed" || rep["stopped_early"] != true {
		t.Fatalf("after Stop: result %v, stopped_early %v, want completed and true; report %v", rep["result"], rep["stopped_early"], rep)
	}
	sent := num(t, rep, "bytes_sent")
	if sent <= 0 || sent != num(t, rep, "bytes_acked") {
		t.Fatalf("after Stop: sent %.0f, acked %.0f; want equal and above 0", sent, num(t, rep, "bytes_acked"))
	}
	return rep
}

// TestBrowserClientExactBytes: two connections with a total that is not a
// whole number of messages; the server reads exactly what the page sent,
// and the page's report agrees.
func TestBrowserClientExactBytes(t *testing.T) {
	ctx := browser(t)
	addr := startServer(t)
	p := openClient(t, ctx, "http://"+addr+"/client")

	var target string
	p.eval(`document.getElementById("target").value`, &target)
	if want := "ws://" + addr + "/ws"; target != want {
		t.Errorf("default target %q, want %q", target, want)
	}

	const perConn, conns = 5_000_000, 2
	rep := p.runBytes(perConn, conns)
	if got, want := num(t, rep, "messages"), float64(conns*((perConn+65535)/65536)); got != want {
		t.Errorf("page sent %.0f messages, want %.0f", got, want)
	}
	waitMetric(t, "http://"+addr+"/metrics", wsBytesRead, perConn*conns, 10*time.Second)

	// The DOM tells the same story as the report object.
	var rows int
	p.eval(`document.querySelectorAll('#conns tr[data-conn][data-state="done"]').length`, &rows)
	if rows != conns {
		t.Errorf("%d connection rows in state done, want %d", rows, conns)
	}
	var acked string
	p.eval(`document.getElementById("total-acked").dataset.value`, &acked)
	if acked != strconv.Itoa(perConn*conns) {
		t.Errorf("#total-acked data-value %q, want %d", acked, perConn*conns)
	}
}

// TestBrowserClientSeesServerStop: the server stops reading 1 s into each
// connection for 4 s. The page must say so while it happens, wait on
// bufferedAmount, and still end with every byte read by the server.
func TestBrowserClientSeesServerStop(t *testing.T) {
	ctx := browser(t)
	addr := startServer(t, "--pause-after", "1s", "--pause-for", "4s", "--rcvbuf", "256KiB")
	p := openClient(t, ctx, "http://"+addr+"/client")

	// 64 KiB at 150 msg/s: about 3 s of sending, with the pause in the middle.
	const messages, size = 450, 65536
	start := time.Now()
	p.start(map[string]string{
		"payload-size": "64KiB", "rate": "150", "total": strconv.Itoa(messages),
		"total-unit": "messages", "connections": "1",
	})
	// The banner is up while the stop lasts (about 3 s); on a loaded
	// machine a CI run's polls once missed the whole of it, the page
	// having counted and shown the stop (its report: 1 stop, 3.92 s), so
	// the episode count it renders with the banner counts too.
	p.waitFor("the page to report that the server stopped reading",
		`document.getElementById("stall").dataset.stalled === "true" || Number(document.getElementById("stall").dataset.episodes) > 0`, 12*time.Second)
	seenAfter := time.Since(start)
	var live bool
	p.eval(`document.getElementById("stall").dataset.stalled === "true"`, &live)
	if !live {
		t.Logf("the stop was seen after it ended (%s in): the page's episode count", seenAfter)
	}
	// Ack silence is detected after 1 s; the pause starts 1 s in.
	if seenAfter < 1500*time.Millisecond {
		t.Errorf("stall reported %s after start, before the server can have been silent for 1 s", seenAfter)
	}
	var stallText string
	p.eval(`document.getElementById("stall").textContent`, &stallText)
	if !strings.Contains(stallText, "Server stopped reading") {
		t.Errorf("stall banner says %q", stallText)
	}
	// Let the browser's own buffer fill too, so the picture shows it (on a
	// loaded machine the run may end first: the report checks it then).
	p.waitFor("bufferedAmount to reach the high-water mark, or the run to end",
		`document.getElementById("browser-held").dataset.held === "true" || window.bpReport`, 15*time.Second)
	p.screenshot("browser-client-server-stopped")

	rep := p.report(40 * time.Second)
	checkCompleted(t, rep, messages*size)
	if got := num(t, rep, "server_stops"); got < 1 {
		t.Errorf("report: server stopped %.0f times, want at least 1", got)
	}
	if got := num(t, rep, "longest_server_stop_ms"); got < 1000 || got > 8000 {
		t.Errorf("report: longest server stop %.0f ms, want about 4000 (1000..8000)", got)
	}
	if got := num(t, rep, "stalls"); got < 1 {
		t.Errorf("report: %.0f stalls, want at least 1 (bufferedAmount held the page back)", got)
	}
	if got := num(t, rep, "peak_buffered"); got < 1<<20 {
		t.Errorf("report: peak bufferedAmount %.0f bytes, want at least the 1 MiB high-water mark", got)
	}
	if got := num(t, rep, "peak_in_pipe"); got < 256<<10 {
		t.Errorf("report: peak in pipe %.0f bytes, want at least the server's 256 KiB receive buffer", got)
	}
	waitMetric(t, "http://"+addr+"/metrics", wsBytesRead, messages*size, 10*time.Second)
	var episodes string
	p.eval(`document.getElementById("stall").dataset.episodes`, &episodes)
	if episodes == "0" {
		t.Errorf("#stall data-episodes is 0 after the run")
	}
	p.screenshot("browser-client-report")
}

// TestBrowserClientStop: a run without a total goes on until Stop; Stop
// sends the fin with what was sent, and the server reads exactly that.
func TestBrowserClientStop(t *testing.T) {
	ctx := browser(t)
	addr := startServer(t)
	p := openClient(t, ctx, "http://"+addr+"/client?payload=16KiB&rate=50&total=0&connections=2")
	p.start(nil)
	sent := num(t, p.stopRun(), "bytes_sent")
	waitMetric(t, "http://"+addr+"/metrics", wsBytesRead, sent, 10*time.Second)
}

// TestBrowserClientBehindRelay: the same page against bp-relay in front of
// bp-server. The page comes from the relay when it serves /client, else
// from the server with the relay as its target.
func TestBrowserClientBehindRelay(t *testing.T) {
	if _, err := os.Stat(filepath.Join("..", "cmd", "bp-relay")); err != nil {
		t.Skip("cmd/bp-relay does not exist yet; this case runs once it does")
	}
	relayBin, err := buildBinary(t, "bp-relay")
	if err != nil {
		t.Skipf("cmd/bp-relay does not build yet; skipping: %v", err)
	}
	ctx := browser(t)
	server := startServer(t)
	relay := freePort(t)
	// The page comes from the server: another origin, which the relay
	// must be told to allow.
	r := startProc(t, relayBin, "--http-addr", relay, "--tcp-addr", "", "--upstream", "ws://"+server+"/ws",
		"--metrics-addr", "127.0.0.1:0", "--log-format", "json", "--allowed-origins", "http://"+server)
	waitListening(t, r, relay)

	pageURL := "http://" + server + "/client?target=" + "ws://" + relay + "/ws"
	if resp, err := http.Get("http://" + relay + "/client"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			pageURL = "http://" + relay + "/client"
		}
	}
	t.Logf("page: %s", pageURL)
	p := openClient(t, ctx, pageURL)
	const messages, size = 200, 65536
	p.start(map[string]string{
		"payload-size": "64KiB", "rate": "0", "total": strconv.Itoa(messages),
		"total-unit": "messages", "connections": "2",
	})
	rep := p.report(60 * time.Second)
	checkCompleted(t, rep, 2*messages*size)
	if !strings.Contains(fmt.Sprint(rep["target"]), relay) {
		t.Errorf("page target %v, want the relay at %s", rep["target"], relay)
	}
	waitMetric(t, "http://"+server+"/metrics", wsBytesRead, 2*messages*size, 10*time.Second)
	p.screenshot("browser-client-relay")
}

// waitListening waits until addr accepts connections (or the process ends).
func waitListening(t *testing.T, p *proc, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited; stderr:\n%s", p.name, p.stderr())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s not listening on %s; stderr:\n%s", p.name, addr, p.stderr())
}
