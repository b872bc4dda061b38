package web_test

// End-to-end tests of the page's HTTP/2 runs: headless Chromium loads
// /client over https from a real bp-server (self-signed certificate, ALPN
// h2), uploads with fetch() and a streaming body to /h2, and reads the
// acks on the sibling stream /h2/acks. The helpers are in e2e_test.go and
// e2e_hops_test.go.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/go-backpressure/go-backpressure/internal/lab"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

const h2BytesRead = `bp_bytes_read_total{protocol="http2"}`

// h2Env is bp-server over TLS (h2 by ALPN) and a browser for it.
type h2Env struct {
	ctx        context.Context // the browser's tab
	addr       string          // the server's
	metrics    *http.Client    // verifies the server's certificate
	metricsURL string
	requests   *requestLog // the browser's record of its requests
	server     *proc
}

// h2Server starts bp-server over TLS with args, and a browser that
// accepts its certificate.
func h2Server(t *testing.T, args ...string) *h2Env {
	t.Helper()
	certFile, keyFile, pool := selfSignedCert(t)
	// Test only: Chromium does not trust the certificate made here (see
	// TestBrowserClientTLS); the test's own client verifies it.
	e := &h2Env{ctx: browser(t, chromedp.Flag("ignore-certificate-errors", true)), metrics: trustingClient(pool)}
	e.requests = watchRequests(e.ctx)
	e.server, e.addr = startServerProc(t, append([]string{"--tls-cert", certFile, "--tls-key", keyFile}, args...)...)
	e.metricsURL = "https://" + e.addr + "/metrics"
	t.Cleanup(e.metrics.CloseIdleConnections)
	return e
}

// metric scrapes one series of the server's, failing the test when it is
// missing.
func (e *h2Env) metric(t *testing.T, series string) float64 {
	t.Helper()
	v, err := metricValueWith(context.Background(), e.metrics, e.metricsURL, series)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitBytesRead waits until the server has read exactly want bytes over
// HTTP/2.
func (e *h2Env) waitBytesRead(t *testing.T, want float64) {
	t.Helper()
	waitMetricWith(t, e.metrics, e.metricsURL, h2BytesRead, want, 10*time.Second)
}

// requestLog is the browser's own record (DevTools) of the answers it
// got: protocol and connection by URL.
type requestLog struct {
	mu    sync.Mutex
	proto map[string]string
	conn  map[string]float64
}

func watchRequests(ctx context.Context) *requestLog {
	l := &requestLog{proto: map[string]string{}, conn: map[string]float64{}}
	chromedp.ListenTarget(ctx, func(ev any) {
		if r, ok := ev.(*network.EventResponseReceived); ok {
			l.mu.Lock()
			l.proto[r.Response.URL], l.conn[r.Response.URL] = r.Response.Protocol, r.Response.ConnectionID
			l.mu.Unlock()
		}
	})
	return l
}

// checkStreams asserts the browser's record of a run's streams: n ack
// streams and n uploads, all over h2, all on one connection.
func (l *requestLog) checkStreams(t *testing.T, n int) {
	t.Helper()
	l.checkStreamPairs(t, n, "/h2/acks", "/h2?acks=")
}

// checkStreamPairs asserts the browser's record of n runs of two streams
// each: the URL ending in shared, the same for every run (one record for
// them all), and the n URLs containing each; all over h2, all on one
// connection.
func (l *requestLog) checkStreamPairs(t *testing.T, n int, shared, each string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	shares, eaches := 0, 0
	conns := map[float64]bool{}
	for u, p := range l.proto {
		switch {
		case strings.HasSuffix(u, shared):
			shares++
		case strings.Contains(u, each):
			eaches++
		default:
			continue
		}
		conns[l.conn[u]] = true
		if p != "h2" {
			t.Errorf("the browser's record: %s over %q, want h2", u, p)
		}
	}
	if shares != 1 || eaches != n || len(conns) != 1 {
		t.Errorf("the browser's record: %d URL(s) ending %s, %d containing %s, on %d connection(s); want 1, %d on 1", shares, shared, eaches, each, len(conns), n)
	}
}

func trustingClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// checkOverHTTP2 asserts that the runs went over HTTP/2 by the page's own
// record (Resource Timing) and by the server's: its HTTP/2 frames, and no
// WebSocket bytes.
func (e *h2Env) checkOverHTTP2(t *testing.T, rep map[string]any, conns int) {
	t.Helper()
	if rep["transport"] != "h2" {
		t.Errorf("report transport %v, want h2", rep["transport"])
	}
	protos, _ := rep["http_protocols"].([]any)
	if len(protos) != conns {
		t.Errorf("report http_protocols %v, want one per connection (%d)", rep["http_protocols"], conns)
	}
	for _, p := range protos {
		if p != "h2" {
			t.Errorf("the page's record says an upload went over %q, want h2", p)
		}
	}
	e.requests.checkStreams(t, conns)
	if got := e.metric(t, wsBytesRead); got != 0 {
		t.Errorf("%s = %.0f, want 0: the run was to go over HTTP/2", wsBytesRead, got)
	}
	// Each run is two streams: the ack stream's GET and the upload.
	if got := e.metric(t, `bp_http2_frames_received_total{type="HEADERS"}`); got < float64(2*conns) {
		t.Errorf("server received %.0f HTTP/2 HEADERS frames, want at least %d", got, 2*conns)
	}
	if got := e.metric(t, `bp_connections_rejected_total{protocol="http2",reason="ack_stream"}`); got != 0 {
		t.Errorf("server refused %.0f uploads' ack stream ids, want 0", got)
	}
}

// TestBrowserClientHTTP2ExactBytes: two uploads over HTTP/2 with a total
// that is not a whole number of messages; the server reads exactly what
// the page sent, over HTTP/2.
func TestBrowserClientHTTP2ExactBytes(t *testing.T) {
	e := h2Server(t)
	p := openClient(t, e.ctx, "https://"+e.addr+"/client?transport=h2")
	checkTarget(t, p, "https:", "https://"+e.addr+"/h2")

	const perConn, conns = 3_000_000, 2
	const want = perConn * conns
	rep := p.runBytes(perConn, conns)
	if got, wantMsgs := num(t, rep, "messages"), float64(conns*((perConn+65535)/65536)); got != wantMsgs {
		t.Errorf("page sent %.0f messages, want %.0f", got, wantMsgs)
	}
	e.waitBytesRead(t, want)
	e.checkOverHTTP2(t, rep, conns)
	if got := e.metric(t, `bp_http2_frames_received_total{type="DATA"}`); got < want/(1<<20) {
		t.Errorf("server received %.0f HTTP/2 DATA frames for %d bytes", got, want)
	}
	p.screenshot("browser-client-h2")
}

// TestBrowserClientHTTP2SeesServerStop: the server stops reading 1 s into
// the upload for 4 s. Its stream window closes, the browser stops taking
// the page's chunks, and the acks stop: the page must see both for about
// as long as the server's own count of its pause, and still end with
// every byte read.
func TestBrowserClientHTTP2SeesServerStop(t *testing.T) {
	e := h2Server(t, "--pause-after", "1s", "--pause-for", "4s")
	p := openClient(t, e.ctx, "https://"+e.addr+"/client?transport=h2")

	// 64 KiB at 150 msg/s: about 3 s of sending, with the pause in the middle.
	const messages, size = 450, 65536
	p.start(map[string]string{
		"payload-size": "64KiB", "rate": "150", "total": strconv.Itoa(messages), "total-unit": "messages", "connections": "1",
	})
	p.waitFor("the page to report that the server stopped reading",
		`document.getElementById("stall").dataset.stalled === "true"`, 12*time.Second)
	p.waitFor("the browser to hold the page's next chunk, or the run to end",
		`document.getElementById("browser-held").dataset.held === "true" || window.bpReport`, 10*time.Second)
	p.screenshot("browser-client-h2-server-stopped")
	rep := p.report(40 * time.Second)
	checkCompleted(t, rep, messages*size)
	e.waitBytesRead(t, messages*size)
	e.checkOverHTTP2(t, rep, 1)

	// The reference: the server's own count of the time it did not read.
	paused := e.metric(t, `bp_read_paused_seconds_total{protocol="http2"}`) * 1000
	t.Logf("server paused %.0f ms; page: longest wait for a pull %.0f ms, longest ack silence %.0f ms, %.0f stalls, peak in pipe %.0f bytes",
		paused, num(t, rep, "longest_wait_ms"), num(t, rep, "longest_server_stop_ms"), num(t, rep, "stalls"), num(t, rep, "peak_in_pipe"))
	if paused < 3900 || paused > 4500 {
		t.Fatalf("server paused %.0f ms in all, want its schedule's 4000", paused)
	}
	// The browser holds the page back once its buffers and the stream
	// window (1 MiB) are full: at 10 MB/s a fraction of a second in.
	if got := num(t, rep, "longest_wait_ms"); got < 0.6*paused || got > paused+2000 {
		t.Errorf("longest wait for the browser's pull %.0f ms, want most of the server's %.0f ms pause", got, paused)
	}
	if got := num(t, rep, "longest_server_stop_ms"); got < paused-1500 || got > paused+2000 {
		t.Errorf("longest time without ack progress %.0f ms, want about the server's %.0f ms pause", got, paused)
	}
	if got := num(t, rep, "server_stops"); got < 1 {
		t.Errorf("report: server stopped %.0f times, want at least 1", got)
	}
	if got := num(t, rep, "peak_in_pipe"); got < 1<<20 {
		t.Errorf("report: peak in pipe %.0f bytes, want at least the server's 1 MiB stream window", got)
	}
	p.screenshot("browser-client-h2-report")
}

// TestBrowserH2WireMatchesGo: the page's hello line and frames are the
// bytes flow's encoders write (bp-client's); and a page over http:// does
// not offer what needs https://.
func TestBrowserH2WireMatchesGo(t *testing.T) {
	ctx := browser(t)
	addr := startServer(t)
	p := openClient(t, ctx, "http://"+addr+"/client?transport=h2")
	// Over http:// the page refuses the transport, and says why.
	if err := chromedp.Run(ctx, chromedp.Click("#start", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	var formErr string
	p.eval(`document.getElementById("form-error").textContent`, &formErr)
	if !strings.Contains(formErr, "https://") || !strings.Contains(formErr, "HTTP/2") {
		t.Errorf("HTTP/2 from an http:// page: the page says %q, want why it needs https://", formErr)
	}
	var state string
	p.eval(`document.getElementById("run-state").dataset.state`, &state)
	if state != "idle" {
		t.Errorf("run state %q after the refused Start, want idle", state)
	}
	hello := flow.Hello{RunID: "web-0a1b2c3d", Direction: flow.Up, PayloadSize: 65536, TotalBytes: 29491200, Rate: 150.5}
	var got struct{ Hello, Data, Fin []byte }
	expr := `import("./client/h2wire.js").then(m => ({
		Hello: Array.from(m.helloLine({run_id: "web-0a1b2c3d", direction: "up", payload_size: 65536, total_bytes: 29491200, rate: 150.5})),
		Data: Array.from(m.dataFrame(new TextEncoder().encode("backpressure "))),
		Fin: Array.from(m.controlFrame({type: "fin", bytes: 29491200})),
	}))`
	var raw json.RawMessage
	err := chromedp.Run(ctx, chromedp.Evaluate(expr, &raw, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if err != nil {
		t.Fatal(err)
	}
	var ints struct{ Hello, Data, Fin []int }
	if err := json.Unmarshal(raw, &ints); err != nil {
		t.Fatal(err)
	}
	got.Hello, got.Data, got.Fin = bytesOf(ints.Hello), bytesOf(ints.Data), bytesOf(ints.Fin)
	js, err := flow.EncodeHello(hello)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{
		"hello": append(append([]byte(flow.TCPHelloPrefix), js...), '\n'),
		"data":  frame('D', []byte("backpressure ")),
		"fin":   frame('C', flow.AppendControl(nil, flow.Control{Type: flow.Fin, Bytes: 29491200})),
	}
	for name, g := range map[string][]byte{"hello": got.Hello, "data": got.Data, "fin": got.Fin} {
		if string(g) != string(want[name]) {
			t.Errorf("page's %s: %q, Go writes %q", name, g, want[name])
		}
	}
}

func bytesOf(ints []int) []byte {
	b := make([]byte, len(ints))
	for i, v := range ints {
		b[i] = byte(v)
	}
	return b
}

// frame is a frame as docs/PROTOCOL.md draws it: type, length, body.
func frame(typ byte, body []byte) []byte {
	f := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(f[1:], uint32(len(body)))
	return append(f, body...)
}

// TestBrowserClientHTTP2Stop: an HTTP/2 run without a total goes on until
// Stop; the fin goes out as the next chunk with what was sent, and the
// server reads exactly that.
func TestBrowserClientHTTP2Stop(t *testing.T) {
	e := h2Server(t)
	p := openClient(t, e.ctx, "https://"+e.addr+"/client?transport=h2&payload=16KiB&rate=50&total=0&connections=2")
	p.start(nil)
	rep := p.stopRun()
	e.waitBytesRead(t, num(t, rep, "bytes_sent"))
	e.checkOverHTTP2(t, rep, 2)
}

// TestBrowserClientHTTP2Refused: the server refuses the second upload
// (--max-connections 1): the page says why, from the server's answer,
// while the first upload completes.
func TestBrowserClientHTTP2Refused(t *testing.T) {
	e := h2Server(t, "--max-connections", "1")
	p := openClient(t, e.ctx, "https://"+e.addr+"/client?transport=h2&payload=16KiB&rate=100&total=200&connections=2")
	p.start(nil)
	rep := p.report(30 * time.Second)
	if rep["result"] != "failed" || !strings.Contains(fmt.Sprint(rep["error"]), "HTTP 503") || num(t, rep, "failed_connections") != 1 {
		t.Fatalf("result %v, error %q, %v failed; want one upload failed with the server's 503", rep["result"], rep["error"], rep["failed_connections"])
	}
	t.Logf("the page says: %s", rep["error"])
	if got := e.metric(t, `bp_connections_rejected_total{protocol="http2",reason="limit"}`); got != 1 {
		t.Errorf("server refused %.0f runs for the limit, want 1", got)
	}
	e.waitBytesRead(t, 200*16384)
}

// TestBrowserClientHTTP2BehindCaddy: the page, its uploads and their ack
// streams through Caddy (deploy/caddy/caddy-browser-h2.Caddyfile: TLS and
// h2 from the browser, h2c to bp-server). The server stops reading for
// 3 s: the page sees it through the hop, and the server reads exactly
// what the page sent.
func TestBrowserClientHTTP2BehindCaddy(t *testing.T) {
	exe := caddyPath(t)
	ctx := browser(t, chromedp.Flag("ignore-certificate-errors", true))
	seen := watchRequests(ctx)
	server := startServer(t, "--pause-after", "1s", "--pause-for", "3s")
	listen := startBrowserCaddy(t, exe, server)

	p := openClient(t, ctx, "https://"+listen+"/client?transport=h2&rate=150&total=300")
	checkTarget(t, p, "https:", "https://"+listen+"/h2")
	p.start(nil)
	p.waitFor("the page to report that the server stopped reading",
		`document.getElementById("stall").dataset.stalled === "true"`, 12*time.Second)
	rep := p.report(40 * time.Second)
	const want = 300 * 65536
	checkCompleted(t, rep, want)
	waitMetric(t, "http://"+server+"/metrics", h2BytesRead, want, 10*time.Second)
	seen.checkStreams(t, 1)
	t.Logf("through Caddy: longest wait for a pull %.0f ms, longest ack silence %.0f ms, peak in pipe %.0f bytes",
		num(t, rep, "longest_wait_ms"), num(t, rep, "longest_server_stop_ms"), num(t, rep, "peak_in_pipe"))
	if got := num(t, rep, "longest_server_stop_ms"); got < 1500 || got > 5000 {
		t.Errorf("longest time without ack progress %.0f ms, want about the server's 3 s pause", got)
	}
	if got := num(t, rep, "peak_in_pipe"); got < 1<<20 {
		t.Errorf("peak in pipe %.0f bytes, want at least bp-server's 1 MiB stream window", got)
	}
	p.screenshot("browser-client-h2-caddy")
}

// caddyPath is Caddy's executable; the test is skipped without it (but
// fails in CI).
func caddyPath(t *testing.T) string {
	t.Helper()
	exe, err := exec.LookPath("caddy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("caddy not found; %s", lab.CaddyInstallHint)
		}
		t.Skipf("caddy not found; %s", lab.CaddyInstallHint)
	}
	return exe
}

// startBrowserCaddy runs Caddy in front of the server at upstream as
// deploy/caddy/caddy-browser-h2.Caddyfile has it (TLS and h2 from the
// browser, h2c to bp-server), and returns its address.
func startBrowserCaddy(t *testing.T, exe, upstream string) string {
	t.Helper()
	certFile, keyFile, _ := selfSignedCert(t)
	listen, admin, dir := freePort(t), freePort(t), t.TempDir()
	env := append(lab.CaddyEnv(listen, upstream, admin, filepath.Join(dir, "access.log")), lab.CaddyTLSEnv(certFile, keyFile)...)
	env = append(env, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "HOME="+dir)
	c := startProcEnv(t, env, exe, "run", "--config", filepath.Join("..", "deploy", "caddy", "caddy-browser-h2.Caddyfile"), "--adapter", "caddyfile")
	waitListening(t, c, listen)
	return listen
}
