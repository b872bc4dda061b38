// Command lab runs a path of the backpressure lab, on loopback or (the
// wan-* profiles, as root) on hosts of their own with shaped links: bp-server,
// the profile's hop (bp-relay, HAProxy, nginx or Caddy) and bp-client, each with its
// metrics, against a server that pauses its reading, then prints the
// client's report and every hop's numbers, and stops everything it started.
//
//	go run ./scripts/lab                   # list the profiles
//	go run ./scripts/lab haproxy-tcp       # run one (make lab PROFILE=haproxy-tcp)
//	go run ./scripts/lab -all              # run every one, then a table (make lab-all)
//	go run ./scripts/lab -json relay-buffered   # the report, hops and byte map as JSON
//	go run ./scripts/lab -link client-haproxy=100mbit,40ms,0.1% wan-haproxy   # a link changed
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
	"github.com/go-backpressure/go-backpressure/internal/netlab"
)

// The ends' settings in every run; -server and -client add to them (a flag
// given again wins, as the binaries parse their flags in order).
const (
	defaultServerFlags = "--pause-after 2s --pause-for 4s --rcvbuf 256KiB"
	defaultClientFlags = "--duration 10s --payload-size 64KiB --rate 160 --sndbuf 256KiB"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	all := fs.Bool("all", false, "run every profile in turn, then print one table")
	serverExtra := fs.String("server", "", "bp-server flags added after the defaults ("+defaultServerFlags+"); a flag given again wins")
	clientExtra := fs.String("client", "", "bp-client flags added after the defaults ("+defaultClientFlags+"); a flag given again wins")
	keep := fs.Bool("keep", false, "keep each run's directory (logs and rendered configs) and say where; a host profile's hosts stay up until Ctrl-C")
	deploy := fs.String("deploy", "deploy", "directory with the haproxy/, nginx/ and caddy/ configs")
	quiet := fs.Bool("quiet", false, "do not show which processes start")
	htmlDir := fs.String("html", "artifacts/lab", "write each profile's run as an HTML page (<profile>.html) and a summary page linking them (index.html) into this directory (empty: none)")
	links, rmem, wmem, fleetSize := hostFlags(fs)
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
	if fs.NArg() == 1 && fs.Arg(0) == "fleet" {
		return runFleet(*fleetSize, *asJSON, *keep, *quiet, serverFlags, clientFlags, links.values, rmem.values, wmem.values)
	}
	profiles, code, ok := pickProfiles(fs, *all)
	if !ok {
		return code
	}
	if !*all { // -all runs loopback and host profiles alike: each checks its own
		if err := lab.CheckHostOptions(profiles[0], lab.Options{Links: links.values, TCPRmem: rmem.values, TCPWmem: wmem.values}); err != nil {
			fmt.Fprintln(os.Stderr, "lab:", err)
			return 2
		}
	}

	// With -json, stdout carries only the JSON document; everything for
	// people goes to stderr.
	out := os.Stdout
	if *asJSON {
		out = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	bin, ok := buildBins(ctx, out)
	if !ok {
		return 1
	}
	defer os.RemoveAll(bin)

	opts := lab.Options{
		Bin: bin, Deploy: *deploy, Keep: *keep,
		Server: strings.Fields(serverFlags), Client: strings.Fields(clientFlags),
		Links: links.values, TCPRmem: rmem.values, TCPWmem: wmem.values,
		Hold: func(hosts []netlab.Host) { holdHosts(ctx, out, hosts) },
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
		if ctx.Err() != nil { // with -keep, Ctrl-C ends the hold: results still print
			if !*keep || err != nil {
				return 130
			}
			break
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

// buildBins builds the lab's binaries into a new temporary directory,
// which the caller removes; on failure it says why and removes it itself.
func buildBins(ctx context.Context, out io.Writer) (string, bool) {
	bin, err := os.MkdirTemp("", "bp-lab-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		return "", false
	}
	fmt.Fprintln(out, "== building bp-server, bp-client, bp-sockets and bp-relay")
	relayErr, err := lab.Build(ctx, ".", bin)
	if err != nil {
		os.RemoveAll(bin)
		fmt.Fprintln(os.Stderr, "lab:", err)
		return "", false
	}
	if relayErr != nil {
		fmt.Fprintln(out, "   note: the relay profiles cannot run:", relayErr)
	}
	return bin, true
}

// hostFlags are the host profiles' flags: links, TCP memory, the fleet.
func hostFlags(fs *flag.FlagSet) (links, rmem, wmem *listFlag, fleet *string) {
	links = &listFlag{check: func(v string) error { _, err := netlab.ParseLink(v, netlab.Link{}); return err }}
	rmem, wmem = new(listFlag), new(listFlag)
	fs.Var(links, "link", "a host profile's link: a-b=RATE,RTT[,LOSS%][,mtu=N], e.g. client-haproxy=100mbit,40ms,0.1% (parts optional, repeatable; docs/LAB.md)")
	fs.Var(rmem, "tcp-rmem", "a host's net.ipv4.tcp_rmem: host=min,default,max (host or all; repeatable)")
	fs.Var(wmem, "tcp-wmem", "a host's net.ipv4.tcp_wmem: host=min,default,max (host or all; repeatable)")
	fleet = fs.String("fleet", "8x250x2", "the fleet profile's size: CLIENTSxCONNECTIONSxSERVERS (client hosts, connections per client, server hosts)")
	return links, rmem, wmem, fleet
}

// listFlag is a flag that may be given more than once; check, when set,
// refuses a malformed value as the flag is parsed (exit status 2, before
// anything is built).
type listFlag struct {
	values []string
	check  func(string) error
}

func (l *listFlag) String() string { return strings.Join(l.values, " ") }
func (l *listFlag) Set(v string) error {
	if l.check != nil {
		if err := l.check(v); err != nil {
			return err
		}
	}
	l.values = append(l.values, v)
	return nil
}

// holdHosts keeps a host profile's hosts up after the run (-keep) until
// Ctrl-C, listing them as JSON so that tools can be attached.
func holdHosts(ctx context.Context, out *os.File, hosts []netlab.Host) {
	b, _ := json.MarshalIndent(hosts, "   ", "  ")
	fmt.Fprintf(out, "   hosts kept up until Ctrl-C (ip netns exec NAMESPACE ss -tin):\n   %s\n", b)
	<-ctx.Done()
}

func listProfiles() {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	for _, p := range lab.Profiles {
		fmt.Fprintf(tw, "  %s\t%s\n", p.Name, p.Path)
	}
	fmt.Fprintf(tw, "  fleet\tN client hosts -> 1 Gbit/s, 20 ms -> HAProxy host -> 10 Gbit/s, 0.5 ms -> M server hosts (-fleet 8x250x2; root; not in -all)\n")
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

// runFleet runs the fleet profile once and prints every host's line (or,
// with -json, the whole result).
func runFleet(size string, asJSON, keep, quiet bool, serverFlags, clientFlags string, links, rmem, wmem []string) int {
	f, err := lab.ParseFleet(size)
	if err == nil {
		err = lab.CheckFleetOptions(f, lab.Options{Links: links, TCPRmem: rmem, TCPWmem: wmem})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		return 2
	}
	out := os.Stdout
	if asJSON {
		out = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bin, ok := buildBins(ctx, out)
	if !ok {
		return 1
	}
	defer os.RemoveAll(bin)
	opts := lab.Options{Bin: bin, Keep: keep, Links: links, TCPRmem: rmem, TCPWmem: wmem,
		Server: strings.Fields(serverFlags), Client: strings.Fields(clientFlags),
		Hold: func(hosts []netlab.Host) { holdHosts(ctx, out, hosts) }}
	if !quiet {
		opts.Progress = out
	}
	fmt.Fprintf(out, "== fleet: %d client hosts x %d connections -> HAProxy -> %d server hosts\n", f.Clients, f.Connections, f.Servers)
	res, err := lab.RunFleet(ctx, f, opts)
	if res != nil {
		res.WriteText(out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab: fleet:", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	}
	return 0
}
