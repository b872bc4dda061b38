package web_test

// End-to-end tests of the page's downloads over HTTP/2: headless Chromium
// posts the hello to /h2?acks=post, reads the response at its own pace
// and sends its acks on the sibling POST /h2/acks?download=ID. The
// reference is the server's own count: its metrics and its log.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// checkDownloadStreams asserts the browser's record of a download's
// streams: n downloads (one URL for them all) and n ack streams, all over
// h2, on one connection.
func (l *requestLog) checkDownloadStreams(t *testing.T, n int) {
	t.Helper()
	l.checkStreamPairs(t, n, "/h2?acks=post", "/h2/acks?download=")
}

// peakWatch polls one gauge of the server's until stopped, and keeps its
// largest value.
type peakWatch struct {
	mu   sync.Mutex
	peak float64
	stop context.CancelFunc
	done chan struct{}
}

func (e *h2Env) watchPeak(series string) *peakWatch {
	return watchPeak(e.metrics, e.metricsURL, series)
}

func watchPeak(client *http.Client, url, series string) *peakWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &peakWatch{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			if v, err := metricValueWith(ctx, client, url, series); err == nil {
				w.mu.Lock()
				w.peak = max(w.peak, v)
				w.mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return w
}

func (w *peakWatch) max() float64 {
	w.stop()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak
}

// TestBrowserClientHTTP2Download: the page downloads 450 messages of
// 64 KiB at the server's 150 a second, and stops reading 1 s in for 4 s.
// Its report must be the server's count to the byte (written, acked, the
// fin), and its stop must block the server's writes: the stream's window
// closes (the browser's buffers fill), while TCP's stays open (Chromium
// reads its socket for the connection's other streams).
func TestBrowserClientHTTP2Download(t *testing.T) {
	e := h2Server(t, "--sample-interval", "100ms")
	const messages, size = 450, 65536
	const want = messages * size
	p := openClient(t, e.ctx, "https://"+e.addr+"/client?transport=h2&direction=down&payload=64KiB&rate=150&total=450&read_pause_after_ms=1000&read_pause_ms=4000")
	checkTarget(t, p, "https:", "https://"+e.addr+"/h2")
	inPipe := e.watchPeak(`bp_bytes_in_pipe{protocol="http2"}`)
	p.start(nil)
	// The stream layer as the server's tap sees it: once the browser's
	// buffers are full, no WINDOW_UPDATE comes while the page stops.
	const updates = `bp_http2_frames_received_total{type="WINDOW_UPDATE"}`
	stopped := func(ms int) string {
		return fmt.Sprintf(`Number(document.getElementById("total-waited").dataset.value) >= %d`, ms)
	}
	p.waitFor("the page to have stopped reading for 1.5 s", stopped(1500), 10*time.Second)
	early := e.metric(t, updates)
	p.waitFor("the page to have stopped reading for 3.5 s", stopped(3500), 10*time.Second)
	late := e.metric(t, updates)
	rep := p.report(40 * time.Second)
	peak := inPipe.max()
	t.Logf("WINDOW_UPDATE frames from the browser: %.0f at 1.5 s into the page's stop, %.0f at 3.5 s, %.0f at the end", early, late, e.metric(t, updates))
	if late != early {
		t.Errorf("the browser sent %.0f WINDOW_UPDATE frames between 1.5 s and 3.5 s into its stop, want none: its windows stay shut", late-early)
	}
	if rep["result"] != "completed" || rep["direction"] != "down" {
		t.Fatalf("download %v (%v), direction %v; want completed, down: %v", rep["result"], rep["error"], rep["direction"], rep)
	}
	for _, k := range []string{"bytes_read", "bytes_read_acked", "server_bytes"} {
		if got := num(t, rep, k); got != want {
			t.Errorf("report %s %.0f, want %d", k, got, want)
		}
	}
	if got := num(t, rep, "messages_read"); got != messages {
		t.Errorf("report: %.0f messages read, want %d", got, messages)
	}
	// The reference: the server's own count, in its metrics and its log.
	waitMetricWith(t, e.metrics, e.metricsURL, `bp_bytes_written_total{protocol="http2"}`, want, 10*time.Second)
	waitMetricWith(t, e.metrics, e.metricsURL, `bp_bytes_acked_total{protocol="http2"}`, want, 10*time.Second)
	closed := e.server.waitLog(t, "connection closed", 10*time.Second)
	if closed["written_bytes"] != float64(want) || closed["acked_bytes"] != float64(want) || closed["direction"] != "down" || closed["err"] != nil {
		t.Errorf("the server's log of the run: %v; want a down run, %d bytes written and acked, no error", closed, want)
	}
	e.requests.checkDownloadStreams(t, 1)
	if protos, _ := rep["http_protocols"].([]any); len(protos) != 1 || protos[0] != "h2" {
		t.Errorf("report http_protocols %v, want [h2]", rep["http_protocols"])
	}
	if got := e.metric(t, `bp_connections_rejected_total{protocol="http2",reason="ack_stream"}`); got != 0 {
		t.Errorf("server refused %.0f ack streams, want 0", got)
	}

	paused := num(t, rep, "read_paused_ms")
	blocked := e.metric(t, `bp_writes_blocked_seconds_total{protocol="http2"}`) * 1000
	stalls := e.metric(t, `bp_stalls_total{protocol="http2"}`)
	tcpZero := e.metric(t, `bp_socket_peer_window_zero_seconds_total{protocol="http2"}`) * 1000
	t.Logf("page stopped reading %.0f ms; server: writes blocked %.0f ms in %.0f stalls, %.0f bytes in the pipe at most, peer's TCP window zero %.0f ms",
		paused, blocked, stalls, peak, tcpZero)
	if paused < 3950 || paused > 4500 {
		t.Errorf("the page stopped reading for %.0f ms, want its 4000", paused)
	}
	// At 9.8 MB/s the browser's buffers and the stream window (some MB)
	// fill within a second of the stop; the writes block the rest of it.
	if blocked < 0.4*paused || blocked > paused+1500 {
		t.Errorf("server's writes blocked %.0f ms, want most of the page's %.0f ms stop", blocked, paused)
	}
	if stalls < 1 {
		t.Errorf("server stalled %.0f times, want at least 1", stalls)
	}
	if peak < 1<<20 {
		t.Errorf("server's peak in the pipe %.0f bytes, want at least a stream window's MB", peak)
	}
	if tcpZero > 500 {
		t.Errorf("the peer's TCP window was zero %.0f ms: the stop was to close the stream's window, not TCP's", tcpZero)
	}
	p.screenshot("browser-client-h2-download")
}

// TestBrowserClientHTTP2DownloadBehindCaddy: the page's download and its
// ack stream through Caddy (deploy/caddy/caddy-browser-h2.Caddyfile),
// which may carry them to bp-server on two of its connections: the id
// pairs them. The page stops reading 1 s in for 3 s: the bytes are the
// server's to the byte, and its writes block behind Caddy's buffers too.
func TestBrowserClientHTTP2DownloadBehindCaddy(t *testing.T) {
	exe := caddyPath(t)
	ctx := browser(t, chromedp.Flag("ignore-certificate-errors", true))
	seen := watchRequests(ctx)
	server, addr := startServerProc(t, "--sample-interval", "100ms")
	listen := startBrowserCaddy(t, exe, addr)
	metrics := "http://" + addr + "/metrics"

	const messages, size = 450, 65536
	const want = messages * size
	p := openClient(t, ctx, "https://"+listen+"/client?transport=h2&direction=down&payload=64KiB&rate=150&total=450&read_pause_after_ms=1000&read_pause_ms=3000")
	checkTarget(t, p, "https:", "https://"+listen+"/h2")
	inPipe := watchPeak(http.DefaultClient, metrics, `bp_bytes_in_pipe{protocol="http2"}`)
	p.start(nil)
	rep := p.report(40 * time.Second)
	peak := inPipe.max()
	if rep["result"] != "completed" {
		t.Fatalf("download through Caddy %v (%v): %v", rep["result"], rep["error"], rep)
	}
	for _, k := range []string{"bytes_read", "bytes_read_acked", "server_bytes"} {
		if got := num(t, rep, k); got != want {
			t.Errorf("report %s %.0f, want %d", k, got, want)
		}
	}
	waitMetric(t, metrics, `bp_bytes_written_total{protocol="http2"}`, want, 10*time.Second)
	waitMetric(t, metrics, `bp_bytes_acked_total{protocol="http2"}`, want, 10*time.Second)
	closed := server.waitLog(t, "connection closed", 10*time.Second)
	if closed["written_bytes"] != float64(want) || closed["acked_bytes"] != float64(want) || closed["err"] != nil {
		t.Errorf("the server's log of the run: %v; want %d bytes written and acked, no error", closed, want)
	}
	seen.checkDownloadStreams(t, 1)
	blocked, err := metricValue(context.Background(), metrics, `bp_writes_blocked_seconds_total{protocol="http2"}`)
	if err != nil {
		t.Fatal(err)
	}
	paused := num(t, rep, "read_paused_ms")
	t.Logf("through Caddy: page stopped reading %.0f ms; server's writes blocked %.0f ms, %.0f bytes in the pipe at most", paused, blocked*1000, peak)
	// Caddy holds more (its stream windows toward the page and toward
	// bp-server), so the writes block later in the stop than directly.
	if blocked*1000 < 0.25*paused || blocked*1000 > paused+1500 {
		t.Errorf("server's writes blocked %.0f ms, want much of the page's %.0f ms stop", blocked*1000, paused)
	}
	if peak < 2<<20 {
		t.Errorf("server's peak in the pipe %.0f bytes, want more than the browser's and Caddy's windows' few MB", peak)
	}
	p.screenshot("browser-client-h2-download-caddy")
}

// TestBrowserClientHTTP2Both: a both run on the same two streams: the page
// uploads on its ack stream while it reads the download. The server stops
// reading 1 s in for 3 s: the page sees its acks stop, as an upload's
// would; both directions end with the server's count to the byte.
func TestBrowserClientHTTP2Both(t *testing.T) {
	e := h2Server(t, "--pause-after", "1s", "--pause-for", "3s")
	const messages, size = 300, 65536
	const want = messages * size
	p := openClient(t, e.ctx, "https://"+e.addr+"/client?transport=h2&direction=both&payload=64KiB&rate=150&total=300")
	p.start(nil)
	rep := p.report(40 * time.Second)
	if rep["result"] != "completed" || rep["direction"] != "both" {
		t.Fatalf("both %v (%v), direction %v; want completed, both: %v", rep["result"], rep["error"], rep["direction"], rep)
	}
	for _, k := range []string{"bytes_sent", "bytes_acked", "bytes_read", "bytes_read_acked", "server_bytes"} {
		if got := num(t, rep, k); got != want {
			t.Errorf("report %s %.0f, want %d", k, got, want)
		}
	}
	e.waitBytesRead(t, want)
	waitMetricWith(t, e.metrics, e.metricsURL, `bp_bytes_written_total{protocol="http2"}`, want, 10*time.Second)
	// The server's acks of what it read, and of what it wrote (the
	// page's): both directions' in one counter.
	waitMetricWith(t, e.metrics, e.metricsURL, `bp_bytes_acked_total{protocol="http2"}`, want, 10*time.Second)
	closed := e.server.waitLog(t, "connection closed", 10*time.Second)
	if closed["read_bytes"] != float64(want) || closed["written_bytes"] != float64(want) || closed["acked_bytes"] != float64(want) || closed["err"] != nil {
		t.Errorf("the server's log of the run: %v; want %d bytes read, written and acked, no error", closed, want)
	}
	e.requests.checkDownloadStreams(t, 1)
	paused := e.metric(t, `bp_read_paused_seconds_total{protocol="http2"}`) * 1000
	t.Logf("server paused %.0f ms; page: longest ack silence %.0f ms, longest wait for a pull %.0f ms, peak in pipe %.0f bytes",
		paused, num(t, rep, "longest_server_stop_ms"), num(t, rep, "longest_wait_ms"), num(t, rep, "peak_in_pipe"))
	if got := num(t, rep, "longest_server_stop_ms"); got < paused-1500 || got > paused+2000 {
		t.Errorf("longest time without ack progress %.0f ms, want about the server's %.0f ms pause", got, paused)
	}
	p.screenshot("browser-client-h2-both")
}

// TestBrowserStreamParser: the page's parser of a download's response
// (h2wire.js) takes the bytes Go's encoders write, cut at every size from
// one byte up: the payload to the byte (never copied), each frame's end,
// the fin, the refusal line's reason; and the page's ack is Go's.
func TestBrowserStreamParser(t *testing.T) {
	ctx := browser(t)
	addr := startServer(t)
	openClient(t, ctx, "http://"+addr+"/client")
	var wire []byte
	wire = append(wire, frame('D', bytes.Repeat([]byte{'x'}, 70000))...)
	wire = append(wire, frame('D', nil)...)
	wire = append(wire, frame('D', []byte("backpressure "))...)
	wire = append(wire, frame('C', flow.AppendControl(nil, flow.Control{Type: flow.Fin, Bytes: 70013}))...)
	wire = append(wire, "BP/1 refused: no ack stream within 10s\n"...)
	ints := make([]int, len(wire))
	for i, b := range wire {
		ints[i] = int(b)
	}
	js, _ := json.Marshal(ints)
	expr := `import("./client/h2wire.js").then(m => {
		const wire = new Uint8Array(` + string(js) + `);
		const out = [];
		for (const cut of [1, 2, 3, 5, 7, 4096, wire.length]) {
			const p = new m.StreamParser();
			const got = { data: 0, frames: 0, fins: [], refused: "" };
			for (let at = 0; at < wire.length; at += cut) {
				for (const ev of p.push(wire.subarray(at, at + cut))) {
					if (ev.data !== undefined) { got.data += ev.data; if (ev.frameEnd) got.frames++; }
					if (ev.control) got.fins.push(ev.control.bytes);
					if (ev.refused !== undefined) got.refused = ev.refused;
				}
			}
			out.push(got);
		}
		return { runs: out, ack: Array.from(m.ackFrame(70013)) };
	})`
	var got struct {
		Runs []struct {
			Data, Frames float64
			Fins         []float64
			Refused      string
		}
		Ack []int
	}
	var raw json.RawMessage
	if err := chromedp.Run(ctx, chromedp.Evaluate(expr, &raw, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) })); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	for i, r := range got.Runs {
		if r.Data != 70013 || r.Frames != 3 || len(r.Fins) != 1 || r.Fins[0] != 70013 || r.Refused != "no ack stream within 10s" {
			t.Errorf("cut %d: %+v; want 70013 bytes in 3 frames, fin 70013, refused %q", i, r, "no ack stream within 10s")
		}
	}
	if want := frame('C', flow.AppendControl(nil, flow.Control{Type: flow.Ack, Bytes: 70013})); string(bytesOf(got.Ack)) != string(want) {
		t.Errorf("page's ack %q, Go writes %q", bytesOf(got.Ack), want)
	}
}

// TestBrowserClientHTTP2DownloadStop: a download without a total runs
// until Stop, which closes its two streams: the page's report says
// stopped, the server counts a peer that closed before the run ended,
// and writes no more.
func TestBrowserClientHTTP2DownloadStop(t *testing.T) {
	e := h2Server(t)
	p := openClient(t, e.ctx, "https://"+e.addr+"/client?transport=h2&direction=down&payload=16KiB&rate=50&total=0")
	p.start(nil)
	p.waitFor("the download to read", `Number(document.getElementById("total-acked").dataset.value) > 0`, 10*time.Second)
	if err := chromedp.Run(p.ctx, chromedp.Click("#stop", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	rep := p.report(20 * time.Second)
	if rep["result"] != "stopped" || num(t, rep, "bytes_read") <= 0 {
		t.Fatalf("after Stop: %v, %v bytes read; want stopped after some: %v", rep["result"], rep["bytes_read"], rep)
	}
	waitMetricWith(t, e.metrics, e.metricsURL, `bp_connection_errors_total{protocol="http2",reason="peer_closed"}`, 1, 10*time.Second)
	waitMetricWith(t, e.metrics, e.metricsURL, `bp_connections{protocol="http2"}`, 0, 10*time.Second)
}
