package web_test

import (
	"encoding/json"
	"fmt"
	"os"
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
	p.waitFor("the page to show the server's pause while the run goes on",
		`document.getElementById("stall").dataset.stalled === "true" && !window.bpReport`, 30*time.Second)
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
