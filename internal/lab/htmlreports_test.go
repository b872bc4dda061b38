package lab

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-backpressure/go-backpressure/pkg/report"
)

// TestWriteHTMLReports: a page per profile that ran, and a summary page
// that links them and names the one that did not run, fetching nothing.
func TestWriteHTMLReports(t *testing.T) {
	dir := t.TempDir()
	tl := &report.Timeline{IntervalSeconds: 0.1, Points: []report.TimelinePoint{{}, {Seconds: 0.1, BytesWritten: 10, BytesAcked: 10}}}
	rows := []Row{
		{Profile: "direct", Result: &Result{Profile: Profile{Name: "direct", Path: "bp-client -> bp-server"},
			Client: report.Summary{Completed: true, BytesWritten: 10, BytesAcked: 10, Timeline: tl}}},
		{Profile: "nginx-ws", Err: errors.New("nginx not installed")},
	}
	index, err := WriteHTMLReports(dir, rows)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<a href="direct.html">direct</a>`, "nginx not installed", "default-src 'none'"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("index.html lacks %q:\n%s", want, b)
		}
	}
	page, err := os.ReadFile(filepath.Join(dir, "direct.html"))
	if err != nil || !strings.Contains(string(page), "drawChart") {
		t.Errorf("direct.html: %v, %d bytes, chart code inlined: %v", err, len(page), strings.Contains(string(page), "drawChart"))
	}
	if _, err := os.Stat(filepath.Join(dir, "nginx-ws.html")); err == nil {
		t.Error("a page for a profile that did not run")
	}
}
