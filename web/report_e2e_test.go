package web_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/go-backpressure/go-backpressure/pkg/report"
)

// TestReportHTML runs bp-client against a pausing bp-server with
// --output json and --report-html, and opens the page in headless Chromium:
// it renders, each chart has as many points as the JSON timeline, the
// verdict text is the JSON's, and the page requests nothing but itself
// (no script, style, font or favicon from anywhere). The timeline's last
// point is the report's totals, to the byte. A screenshot goes to
// artifacts/report-html.png.
func TestReportHTML(t *testing.T) {
	addr := startServer(t, "--pause-after", "1s", "--pause-for", "2s", "--rcvbuf", "128KiB")
	cli, err := buildBinary(t, "bp-client")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	htmlFile := filepath.Join(dir, "report.html")
	out, err := exec.Command(cli, "--target", "ws://"+addr+"/ws", "--duration", "4s", "--rate", "200",
		"--payload-size", "4096", "--sndbuf", "128KiB", "--metrics-addr", "", "--progress", "off",
		"--log-format", "json", "--output", "json", "--report-html", htmlFile).Output()
	if err != nil {
		t.Fatalf("bp-client: %v\n%s", err, out)
	}
	var sum report.Summary
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	checkTimelineTotals(t, sum)

	ctx := browser(t)
	var mu sync.Mutex
	var requests []string
	chromedp.ListenTarget(ctx, func(ev any) {
		if r, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requests = append(requests, r.Request.URL)
			mu.Unlock()
		}
	})
	url := "file://" + htmlFile
	var got struct {
		Ready, Points, Verdict, Outcome string
		Charts                          []string
	}
	err = chromedp.Run(ctx, network.Enable(), chromedp.Navigate(url),
		chromedp.Poll(`document.body.dataset.ready === "true"`, nil, chromedp.WithPollingTimeout(15*time.Second)),
		chromedp.Evaluate(`({Ready: document.body.dataset.ready, Points: document.body.dataset.points,
			Verdict: document.getElementById("verdict").textContent, Outcome: document.getElementById("verdict").dataset.outcome,
			Charts: [...document.querySelectorAll("canvas")].map(c => c.dataset.points)})`, &got))
	if err != nil {
		t.Fatal(err)
	}
	n := fmt.Sprint(len(sum.Timeline.Points))
	if got.Points != n || len(got.Charts) != 3 || strings.Count(strings.Join(got.Charts, ","), n) != 3 {
		t.Errorf("page points %q, charts %q; the JSON timeline has %s points", got.Points, got.Charts, n)
	}
	if sum.Verdict == nil || got.Verdict != sum.Verdict.Summary || got.Outcome != sum.Verdict.Outcome {
		t.Errorf("page verdict %q (%s), JSON %+v", got.Verdict, got.Outcome, sum.Verdict)
	}
	(&page{t: t, ctx: ctx}).screenshot("report-html")
	time.Sleep(300 * time.Millisecond) // a late request (favicon) has its moment
	mu.Lock()
	defer mu.Unlock()
	for _, r := range requests {
		if r != url {
			t.Errorf("the page requested %s; it must fetch nothing", r)
		}
	}
}

// checkTimelineTotals: the timeline ends with the report's totals, to the
// byte, and saw the server's pause block the writes.
func checkTimelineTotals(t *testing.T, sum report.Summary) {
	t.Helper()
	tl := sum.Timeline
	if tl == nil || len(tl.Points) < 10 {
		t.Fatalf("timeline %+v", tl)
	}
	last := tl.Points[len(tl.Points)-1]
	if last.BytesWritten != sum.BytesWritten || last.BytesAcked != sum.BytesAcked || last.BytesRead != sum.BytesRead {
		t.Errorf("timeline ends at written %d acked %d read %d, the report says %d, %d, %d",
			last.BytesWritten, last.BytesAcked, last.BytesRead, sum.BytesWritten, sum.BytesAcked, sum.BytesRead)
	}
	if last.Seconds != sum.DurationSeconds {
		t.Errorf("timeline ends at %v s, the run took %v s", last.Seconds, sum.DurationSeconds)
	}
	if len(tl.BlockedBands) == 0 {
		t.Errorf("no blocked band in a run whose server paused for 2 s: %+v", tl)
	}
}
