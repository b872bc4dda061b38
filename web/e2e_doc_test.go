package web_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

// TestBrowserFormatMatchesCLI: the page writes byte counts as bp-client's
// report does (config.HumanBytes), so one run reads the same in both.
func TestBrowserFormatMatchesCLI(t *testing.T) {
	ctx := browser(t)
	addr := startServer(t)
	openClient(t, ctx, "http://"+addr+"/client")
	values := []float64{0, 12, 999, 1000, 1250, 1750, 2250, 1049, 1050, 1150, 1350, 450_000_000, 65536, 999_949, 999_950, 1 << 20, 917_504, 39.4e6, 1 << 30, 2.5e12, 7e15}
	in, _ := json.Marshal(values)
	var got []string
	expr := fmt.Sprintf(`import("./client/format.js").then(m => %s.map(v => m.formatBytes(v)))`, in)
	err := chromedp.Run(ctx, chromedp.Evaluate(expr, &got, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
		return p.WithAwaitPromise(true)
	}))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		if want := config.HumanBytes(v); i >= len(got) || got[i] != want {
			t.Errorf("formatBytes(%.0f) = %q, bp-client writes %q", v, at(got, i), want)
		}
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(missing)"
}

// pauseShown: the page shows the server's pause, or has shown it (its
// stop count, rendered with the banner), and the run goes on. On a loaded
// CI machine the polls once missed the whole 4 s banner of a 12 s run.
const pauseShown = `(document.getElementById("stall").dataset.stalled === "true" || Number(document.getElementById("stall").dataset.episodes) > 0) && !window.bpReport`

// TestBrowserDocTryIt follows docs/BROWSER.md's "Try it": the server command
// as the doc gives it (on a free port), the link it gives, Start with the
// rest left at the page's defaults. The page must show the server's pause
// (the stall banner) before the run ends, and request nothing that is
// missing (no 404, favicon included).
func TestBrowserDocTryIt(t *testing.T) {
	doc, err := os.ReadFile("../docs/BROWSER.md")
	if err != nil {
		t.Fatal(err)
	}
	_, tryIt, _ := strings.Cut(string(doc), "## Try it")
	tryIt, _, _ = strings.Cut(tryIt, "\n## ")
	cmd := regexp.MustCompile(`(?m)^bin/bp-server --http-addr 127\.0\.0\.1:8080 (.*)$`).FindStringSubmatch(tryIt)
	link := regexp.MustCompile(`<http://127\.0\.0\.1:8080(/client[^>]*)>`).FindStringSubmatch(tryIt)
	if cmd == nil || link == nil {
		t.Fatalf("docs/BROWSER.md's Try it: server command %q, link %q", cmd, link)
	}
	ctx := browser(t)
	var mu sync.Mutex
	var failed []string
	chromedp.ListenTarget(ctx, func(ev any) {
		if r, ok := ev.(*network.EventResponseReceived); ok && r.Response.Status >= 400 {
			mu.Lock()
			failed = append(failed, fmt.Sprintf("%s: HTTP %d", r.Response.URL, r.Response.Status))
			mu.Unlock()
		}
	})
	if err := chromedp.Run(ctx, network.Enable()); err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, strings.Fields(cmd[1])...)
	p := openClient(t, ctx, "http://"+addr+link[1])
	p.start(nil)
	p.waitFor("the page to show the server's pause while the run goes on", pauseShown, 30*time.Second)
	rep := p.report(60 * time.Second)
	if rep["result"] != "completed" {
		t.Errorf("run result %v, want completed", rep["result"])
	}
	// Give a late favicon request its moment.
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(failed) > 0 {
		t.Errorf("the page requested what is missing: %s", strings.Join(failed, "; "))
	}
}

// TestBrowserDocHTTP2 follows docs/BROWSER.md's "Over HTTP/2": its
// openssl command as written (in a temporary directory), the server
// command (on a free port, the files from there), the link, Start. The
// page must show the server's pause both ways (no acks, and the browser
// holding the next chunk) while the run goes on, end with every byte read
// by the server over HTTP/2, and the pipe must peak where the doc says:
// above the 1 MiB stream window, near 1.1 MB.
func TestBrowserDocHTTP2(t *testing.T) {
	p, addr := startDocHTTP2(t, `<https://127\.0\.0\.1:8443(/client[^>]*)>`)
	p.start(nil)
	p.waitFor("the page to show the server's pause while the run goes on", pauseShown, 30*time.Second)
	p.waitFor("the browser to hold the page's next chunk while the run goes on",
		`document.getElementById("browser-held").dataset.held === "true" && !window.bpReport`, 10*time.Second)
	var held string
	p.eval(`document.getElementById("browser-held").textContent`, &held)
	if !strings.Contains(held, "the browser has not taken the next chunk") {
		t.Errorf("the held banner says %q", held)
	}
	rep := p.report(60 * time.Second)
	checkCompleted(t, rep, 1024*65536)
	if rep["transport"] != "h2" || fmt.Sprint(rep["http_protocols"]) != "[h2]" {
		t.Errorf("report: transport %v, protocols %v; want h2 and [h2]", rep["transport"], rep["http_protocols"])
	}
	t.Logf("page: %.0f ms, peak in pipe %.0f bytes, longest wait for a pull %.0f ms, longest ack silence %.0f ms",
		num(t, rep, "duration_ms"), num(t, rep, "peak_in_pipe"), num(t, rep, "longest_wait_ms"), num(t, rep, "longest_server_stop_ms"))
	if got := num(t, rep, "peak_in_pipe"); got < 1<<20 || got > 2e6 {
		t.Errorf("peak in the pipe %.0f bytes; docs/BROWSER.md says about 1.1 MB (the 1 MiB stream window and some 100 kB)", got)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the doc's own self-signed certificate
	defer client.CloseIdleConnections()
	waitMetricWith(t, client, "https://"+addr+"/metrics", `bp_bytes_read_total{protocol="http2"}`, 1024*65536, 10*time.Second)
}

// TestBrowserDocHTTP2Download follows docs/BROWSER.md's "Downloads and
// both over HTTP/2": the same server, the download's link, Start. The page
// must read every byte the server wrote, by the server's count, and stop
// reading for the 4 s the link asks, which blocks the server's writes.
func TestBrowserDocHTTP2Download(t *testing.T) {
	p, addr := startDocHTTP2(t, `<https://127\.0\.0\.1:8443(/client\?transport=h2&direction=down[^>]*)>`)
	p.start(nil)
	rep := p.report(60 * time.Second)
	const want = 1024 * 65536
	if rep["result"] != "completed" || num(t, rep, "bytes_read") != want || num(t, rep, "server_bytes") != want {
		t.Fatalf("download: %v (%v), read %v, the server's fin %v; want completed, %d each", rep["result"], rep["error"], rep["bytes_read"], rep["server_bytes"], want)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the doc's own self-signed certificate
	defer client.CloseIdleConnections()
	metrics := "https://" + addr + "/metrics"
	waitMetricWith(t, client, metrics, `bp_bytes_written_total{protocol="http2"}`, want, 10*time.Second)
	waitMetricWith(t, client, metrics, `bp_bytes_acked_total{protocol="http2"}`, want, 10*time.Second)
	blocked, err := metricValueWith(context.Background(), client, metrics, `bp_writes_blocked_seconds_total{protocol="http2"}`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("page stopped reading %.0f ms; server's writes blocked %.0f ms", num(t, rep, "read_paused_ms"), blocked*1000)
	if got := num(t, rep, "read_paused_ms"); got < 3950 || got > 4500 {
		t.Errorf("the page stopped reading %.0f ms, want the link's 4000", got)
	}
	if blocked < 1.5 {
		t.Errorf("server's writes blocked %.1f s, want most of the page's 4 s stop", blocked)
	}
}

// startDocHTTP2 runs docs/BROWSER.md's "Over HTTP/2" commands as written
// (openssl in a temporary directory; the server on a free port, the files
// from there) and opens the first link after them that linkPattern's
// group matches.
func startDocHTTP2(t *testing.T, linkPattern string) (*page, string) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not found; install Debian's openssl")
	}
	lines, link := docSection(t, "## Over HTTP/2", linkPattern)
	dir := t.TempDir()
	var server []string
	for _, line := range lines {
		switch f := strings.Fields(line); f[0] {
		case "make":
		case "openssl":
			cmd := exec.Command("sh", "-ec", line)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", line, err, out)
			}
		case "bin/bp-server":
			server = f[1:]
		default:
			t.Fatalf("docs/BROWSER.md's Over HTTP/2: a line the test does not know: %q", line)
		}
	}
	if len(server) < 2 || server[0] != "--http-addr" || server[1] != "127.0.0.1:8443" {
		t.Fatalf("docs/BROWSER.md's Over HTTP/2: server command %q", server)
	}
	args := server[2:]
	for i, a := range args {
		if strings.HasSuffix(a, ".pem") {
			args[i] = filepath.Join(dir, a)
		}
	}
	ctx := browser(t, chromedp.Flag("ignore-certificate-errors", true))
	addr := startServer(t, args...)
	return openClient(t, ctx, "https://"+addr+link), addr
}

// docSection returns the shell lines of the first sh block under heading
// in docs/BROWSER.md (continuations joined, comments left out) and the
// first match of linkPattern's group after it.
func docSection(t *testing.T, heading, linkPattern string) ([]string, string) {
	t.Helper()
	doc, err := os.ReadFile("../docs/BROWSER.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(doc), heading+"\n")
	section, _, _ = strings.Cut(section, "\n## ")
	_, block, _ := strings.Cut(section, "```sh\n")
	block, rest, _ := strings.Cut(block, "```")
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(block, "\\\n", " "), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	link := regexp.MustCompile(linkPattern).FindStringSubmatch(rest)
	if len(lines) == 0 || link == nil {
		t.Fatalf("docs/BROWSER.md's %s: commands %q, link %q", heading, lines, link)
	}
	return lines, link[1]
}
