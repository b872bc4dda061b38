package lab

import (
	"fmt"
	"html/template"
	"os"
	"path/filepath"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

// WriteHTMLReports writes, into dir, each profile's run as bp-client's HTML
// report (<profile>.html, the page --report-html writes, from the timeline
// the client's JSON report carries) and index.html, a summary page with
// one line per profile that links them: a lab run to look at and share,
// not only to read. It returns the summary page's path.
func WriteHTMLReports(dir string, rows []Row) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("html reports: %w", err)
	}
	var lines []indexLine
	for _, row := range rows {
		l := indexLine{Profile: row.Profile, Result: "failed"}
		switch {
		case row.Result == nil && row.Err != nil:
			l.Result = row.Err.Error()
		case row.Result != nil:
			if err := writeHTMLReport(filepath.Join(dir, row.Profile+".html"), row.Result); err != nil {
				return "", err
			}
			l.fill(row.Result)
		}
		lines = append(lines, l)
	}
	index := filepath.Join(dir, "index.html")
	f, err := os.Create(index)
	if err != nil {
		return "", fmt.Errorf("html reports: %w", err)
	}
	err = indexTmpl.Execute(f, lines)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("html reports: %w", err)
	}
	return index, nil
}

// writeHTMLReport writes one profile's page.
func writeHTMLReport(path string, res *Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	err = res.Client.WriteHTML(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("html report %s: %w", path, err)
	}
	return nil
}

// indexLine is one profile on the summary page.
type indexLine struct {
	Profile, Path, Link, Result, Outcome, Verdict, Written, Peak string
}

// fill takes a line's figures from the profile's result.
func (l *indexLine) fill(res *Result) {
	c := res.Client
	l.Path, l.Link = res.Profile.Path, l.Profile+".html"
	l.Result = "completed"
	if !c.Completed {
		l.Result = "FAILED: " + c.Error
	}
	if c.Verdict != nil {
		l.Outcome, l.Verdict = c.Verdict.Outcome, c.Verdict.Summary
	}
	l.Written = config.HumanBytes(float64(c.BytesWritten))
	l.Peak = config.HumanBytes(float64(c.PeakBytesInPipe))
}

// indexTmpl is the summary page: like the reports, self-contained.
var indexTmpl = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>go-backpressure lab</title>
<style>
body { font-family: system-ui, sans-serif; font-size: 15px; color: #1d2330; background: #f5f6f8; margin: 0 auto; max-width: 1240px; padding: 16px 20px; }
table { border-collapse: collapse; background: #fff; border: 1px solid #d9dde5; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e8ebf0; vertical-align: top; }
td.num { text-align: right; white-space: nowrap; } a { color: #2457c5; }
</style></head><body>
<h1>go-backpressure lab</h1>
<p>One line per profile; each links to its run drawn over time (bp-client's HTML report).</p>
<table id="profiles"><thead><tr><th>profile</th><th>path</th><th>result</th><th>verdict</th><th>written</th><th>peak in pipe</th></tr></thead><tbody>
{{range .}}<tr data-profile="{{.Profile}}" data-outcome="{{.Outcome}}"><td>{{if .Link}}<a href="{{.Link}}">{{.Profile}}</a>{{else}}{{.Profile}}{{end}}</td><td>{{.Path}}</td><td>{{.Result}}</td><td>{{.Verdict}}</td><td class="num">{{.Written}}</td><td class="num">{{.Peak}}</td></tr>
{{end}}</tbody></table>
</body></html>
`))
