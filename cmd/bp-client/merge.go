package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/report"
)

// mergeUsage is `bp-client merge --help`.
const mergeUsage = `bp-client merge: reads the JSON reports of a fleet's instances and prints one fleet report.

Usage: bp-client merge [--output text|json] [--report-html FILE] REPORT.json... (- for standard input)

--report-html FILE also writes the fleet as one self-contained HTML page, the
same page as an instance's --report-html, drawn from the instances'
timelines summed (their JSON reports carry them).

A file may hold several reports, and log lines among them (kubectl logs of a
Job's pods): every JSON object starting on a line of its own "{" is read.
Reports of another fleet, an instance given twice or a damaged report end
with exit status 2, naming the file. See docs/FLEET.md.
`

// runMerge is `bp-client merge`: a subcommand of bp-client rather than a
// binary of its own, so that every image, buildpack and release that has
// the client has the merge, at the same version as the reports it reads.
func runMerge(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bp-client merge", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	output := fs.String("output", "text", "report format: text or json")
	html := fs.String("report-html", "", "also write the fleet as one self-contained HTML page: the instances' timelines summed, the fleet verdict")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, mergeUsage)
			return config.ExitOK
		}
		fmt.Fprintf(stderr, "bp-client merge: %v (see --help)\n", err)
		return config.ExitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "bp-client merge: %v\n", err)
		return config.ExitUsage
	}
	switch {
	case *output != "text" && *output != "json":
		return fail(config.Invalid("output", *output, "want text or json"))
	case fs.NArg() == 0:
		return fail(errors.New("no reports given (bp-client merge REPORT.json..., - for standard input)"))
	}
	var all []report.Named
	for _, path := range fs.Args() {
		got, err := report.ReadReportFile(path, stdin)
		if err != nil {
			return fail(err)
		}
		all = append(all, got...)
	}
	merged, err := report.Merge(all)
	if err != nil {
		return fail(err)
	}
	if *output == "json" {
		err = merged.WriteJSON(stdout)
	} else {
		err = merged.WriteText(stdout)
	}
	if err != nil {
		return fail(err)
	}
	if *html != "" {
		if err := writeFleetHTML(*html, merged); err != nil {
			return fail(err)
		}
	}
	return config.ExitOK
}

// writeFleetHTML writes the fleet's page to path.
func writeFleetHTML(path string, fs report.FleetSummary) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--report-html: %w", err)
	}
	if err := fs.WriteHTML(f); err != nil {
		f.Close()
		return fmt.Errorf("--report-html %s: %w", path, err)
	}
	return f.Close()
}
