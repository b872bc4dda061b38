package report

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"regexp"

	"github.com/go-backpressure/go-backpressure/web"
)

// The HTML report's page and its own drawing code; the charts and the byte
// formatting are the browser client's (web/static), inlined.
var (
	//go:embed html/report.html
	reportPage string
	//go:embed html/report.js
	reportJS []byte

	reportTmpl = template.Must(template.New("report").Parse(reportPage))
	// moduleLine is an ES module's import line, or the export keyword of a
	// declaration: inlined into one script, the modules need neither.
	moduleLine = regexp.MustCompile(`(?m)^import .*$|^export `)
)

// WriteHTML writes the report as one self-contained HTML page: the verdict
// in words, the run's timeline drawn with the browser client's charts, and
// the text report. Scripts, styles and data are inline and the page's
// content security policy lets it fetch nothing, so it can be mailed or
// attached to a ticket and opened anywhere.
func (s Summary) WriteHTML(w io.Writer) error {
	var text bytes.Buffer
	if err := s.WriteText(&text); err != nil {
		return err
	}
	return s.writeHTML(w, text.String())
}

// writeHTML is the page of s with text as its report in words.
func (s Summary) writeHTML(w io.Writer, text string) error {
	js, css, err := inlineAssets()
	if err != nil {
		return err
	}
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("report data: %w", err)
	}
	return reportTmpl.Execute(w, map[string]any{
		"S": s, "CSS": template.CSS(css), "Text": text,
		// JSON is a JS expression; json.Marshal escapes <, > and &, so
		// nothing in it can end the script.
		"Data": template.JS(data), "JS": template.JS(js),
	})
}

// inlineAssets is format.js, chart.js and the report's own script as one
// script, and the browser client's stylesheet.
func inlineAssets() (js, css []byte, err error) {
	for _, name := range []string{"format.js", "chart.js"} {
		b, err := web.Asset(name)
		if err != nil {
			return nil, nil, fmt.Errorf("report html: %w", err)
		}
		js = append(append(js, moduleLine.ReplaceAll(b, nil)...), '\n')
	}
	js = append(js, reportJS...)
	css, err = web.Asset("style.css")
	if err != nil {
		return nil, nil, fmt.Errorf("report html: %w", err)
	}
	return js, css, nil
}
