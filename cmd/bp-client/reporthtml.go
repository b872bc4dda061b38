package main

import (
	"fmt"
	"os"

	"github.com/go-backpressure/go-backpressure/pkg/report"
)

// writeHTML writes the round's report as an HTML page to --report-html,
// if asked. A page that cannot be written is logged, not fatal: the run
// and its printed report stand.
func (c *client) writeHTML(sum report.Summary) {
	if c.cfg.ReportHTML == "" {
		return
	}
	if err := writeHTMLFile(c.cfg.ReportHTML, sum); err != nil {
		c.log.Error("report html not written", "file", c.cfg.ReportHTML, "err", err)
	}
}

// writeHTMLFile writes the page to a temporary file beside path and renames
// it, so a reader never sees half a page (with --loop, each run replaces it).
func writeHTMLFile(path string, sum report.Summary) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	err = sum.WriteHTML(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
