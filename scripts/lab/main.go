// Command lab runs a path of the backpressure lab on loopback: bp-server,
// the profile's hop (bp-relay, HAProxy, nginx or Caddy) and bp-client, each with its
// metrics, against a server that pauses its reading, then prints the
// client's report and every hop's numbers, and stops everything it started.
//
//	go run ./scripts/lab                   # list the profiles
//	go run ./scripts/lab haproxy-tcp       # run one (make lab PROFILE=haproxy-tcp)
//	go run ./scripts/lab -all              # run every one, then a table (make lab-all)
//	go run ./scripts/lab -json relay-buffered   # the report, hops and byte map as JSON
//
// See docs/LAB.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/go-backpressure/go-backpressure/internal/lab"
)

// The ends' settings in every run; -server and -client add to them (a flag
// given again wins, as the binaries parse their flags in order).
const (
	defaultServerFlags = "--pause-after 2s --pause-for 4s --rcvbuf 256KiB"
	defaultClientFlags = "--duration 10s --rate 160 --sndbuf 256KiB"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	all := fs.Bool("all", false, "run every profile in turn, then print one table")
	serverExtra := fs.String("server", "", "bp-server flags added after the defaults ("+defaultServerFlags+"); a flag given again wins")
	clientExtra := fs.String("client", "", "bp-client flags added after the defaults ("+defaultClientFlags+"; 64 KiB messages); a flag given again wins")
	keep := fs.Bool("keep", false, "keep each run's directory: logs and rendered configs")
	deploy := fs.String("deploy", "deploy", "directory with the haproxy/, nginx/ and caddy/ configs")
	quiet := fs.Bool("quiet", false, "do not show which processes start")
	htmlDir := fs.String("html", "artifacts/lab", "write each profile's run as an HTML page (<profile>.html) and a summary page linking them (index.html) into this directory (empty: none)")
	asJSON := fs.Bool("json", false, "print, per profile, the client's report, each hop's numbers and the byte map as one JSON object on stdout (progress goes to stderr)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: lab [flags] [profile]   (make lab PROFILE=name, make lab-all)\n\n")
		listProfiles()
		fmt.Fprintf(fs.Output(), "\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // asked for: not an error
		}
		return 2
	}
	serverFlags := strings.TrimSpace(defaultServerFlags + " " + *serverExtra)
	clientFlags := strings.TrimSpace(defaultClientFlags + " " + *clientExtra)
	profiles, code, ok := pickProfiles(fs, *all)
	if !ok {
		return code
	}

	// With -json, stdout carries only the JSON document; everything for
	// people goes to stderr.
	out := os.Stdout
	if *asJSON {
		out = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	bin, err := os.MkdirTemp("", "bp-lab-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		return 1
	}
	defer os.RemoveAll(bin)
	fmt.Fprintln(out, "== building bp-server, bp-client, bp-sockets and bp-relay")
	relayErr, err := lab.Build(ctx, ".", bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		return 1
	}
	if relayErr != nil {
		fmt.Fprintln(out, "   note: the relay profiles cannot run:", relayErr)
	}

	opts := lab.Options{
		Bin: bin, Deploy: *deploy, Keep: *keep,
		Server: strings.Fields(serverFlags), Client: strings.Fields(clientFlags),
	}
	if !*quiet {
		opts.Progress = out
	}
	var rows []lab.Row
	status := 0
	for _, p := range profiles {
		fmt.Fprintf(out, "\n== %s: %s\n   %s\n   bp-server %s; bp-client %s\n", p.Name, p.Path, p.Shows, serverFlags, clientFlags)
		res, err := lab.Run(ctx, p, opts)
		rows = append(rows, lab.Row{Profile: p.Name, Result: res, Err: err})
		if res != nil && len(res.Hops) > 0 {
			res.WriteText(out)
		}
		switch {
		case errors.Is(err, lab.ErrMissing):
			fmt.Fprintln(out, "   skipped:", err)
			if !*all {
				status = 1
			}
		case err != nil:
			fmt.Fprintf(os.Stderr, "lab: %s: %v\n", p.Name, err)
			status = 1
		case !res.Client.Completed:
			status = 1
		}
		if ctx.Err() != nil {
			return 130
		}
	}
	if *all {
		fmt.Fprintln(out, "\n== summary (bytes written, blocked seconds and peak in pipe are the client's)")
		lab.WriteTable(out, rows)
	}
	if !writeHTML(*htmlDir, rows, out) || (*asJSON && !writeJSON(rows)) {
		return 1
	}
	return status
}

func listProfiles() {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	for _, p := range lab.Profiles {
		fmt.Fprintf(tw, "  %s\t%s\n", p.Name, p.Path)
	}
	tw.Flush()
}

// writeHTML writes each profile's run as an HTML page and the summary
// page linking them into dir ("": nothing), and says where.
func writeHTML(dir string, rows []lab.Row, out io.Writer) bool {
	if dir == "" {
		return true
	}
	index, err := lab.WriteHTMLReports(dir, rows)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		return false
	}
	fmt.Fprintf(out, "\n== each profile's run drawn over time: %s\n", index)
	return true
}

// pickProfiles is the profiles the command line asks for; when it asks for
// none to run (the list, a usage error), ok is false and code the exit
// status.
func pickProfiles(fs *flag.FlagSet, all bool) (profiles []lab.Profile, code int, ok bool) {
	switch {
	case all:
		profiles = lab.Profiles
	case fs.NArg() == 1:
		p, ok := lab.Lookup(fs.Arg(0))
		if !ok {
			fmt.Fprintf(os.Stderr, "lab: no profile %q\n\n", fs.Arg(0))
			listProfiles()
			return nil, 2, false
		}
		profiles = []lab.Profile{p}
	case fs.NArg() == 0:
		fmt.Println("make lab PROFILE=name runs one profile; make lab-all runs them all. Profiles:")
		fmt.Println()
		listProfiles()
		return nil, 0, false
	default:
		fs.Usage()
		return nil, 2, false
	}
	return profiles, 0, true
}

// writeJSON prints, per profile, the client's report, each hop's numbers
// and the byte map as one JSON document on stdout.
func writeJSON(rows []lab.Row) bool {
	doc := struct {
		Profiles []lab.ResultJSON `json:"profiles"`
	}{}
	for _, row := range rows {
		doc.Profiles = append(doc.Profiles, row.JSON())
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		return false
	}
	return true
}
