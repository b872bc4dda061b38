package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

// Build compiles bp-server, bp-client and bp-sockets from the module at root into bin,
// and bp-relay when cmd/bp-relay exists. A relay that does not build yet is
// not an error: relayErr says why, and the relay profiles report it.
func Build(ctx context.Context, root, bin string) (relayErr, err error) {
	build := func(pkgs ...string) error {
		args := append([]string{"build", "-o", bin + string(filepath.Separator)}, pkgs...)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		cmd.SysProcAttr = sysProcAttr()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
		}
		return nil
	}
	// bp-sockets watches the third-party hops' sockets for the byte map.
	if err := build("./cmd/bp-server", "./cmd/bp-client", "./cmd/bp-sockets"); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "bp-relay")); err != nil {
		return fmt.Errorf("%w: cmd/bp-relay is not in this tree yet", ErrMissing), nil
	}
	if err := build("./cmd/bp-relay"); err != nil {
		return fmt.Errorf("%w: bp-relay does not build yet: %v", ErrMissing, err), nil
	}
	return nil, nil
}

// WriteText prints the client's report and every hop's key numbers, from
// the client to the server.
func (r *Result) WriteText(w io.Writer) {
	r.Client.WriteText(w)
	fmt.Fprintf(w, "\nhops, client to server (scraped at the end of the run):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, h := range r.Hops {
		var parts []string
		for _, n := range h.Numbers {
			if n.Value == 0 && n.Key != "blocked_seconds" {
				continue // a reader's write numbers, a writer's read numbers
			}
			parts = append(parts, n.Label+" "+n.format())
		}
		fmt.Fprintf(tw, "  %s\t%s\n", h.Name, strings.Join(parts, ", "))
		for _, note := range h.Notes {
			fmt.Fprintf(tw, "  \t(%s)\n", note)
		}
	}
	tw.Flush()
	r.writeLinks(w)
	r.WriteByteMap(w)
}

// writeLinks prints each link's setting against the round trip the
// kernel measured, and the hosts' namespaces (host profiles only).
func (r *Result) writeLinks(w io.Writer) {
	if len(r.Links) == 0 {
		return
	}
	fmt.Fprintf(w, "\nlinks (round trip from the sender's TCP_INFO, ss -tin):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, l := range r.Links {
		fmt.Fprintf(tw, "  %s\tasked %.1f ms\trtt median %.1f ms, least %.1f ms, min_rtt %.1f ms (%d samples)\tmost in flight %s\n",
			l.Setting, l.AskedRTTMs, l.RTTMedianMs, l.RTTMinMs, l.MinRTTMs, l.Samples, human(l.MaxInFlightBytes))
	}
	tw.Flush()
	for _, h := range r.Hosts {
		var ifs []string
		for _, i := range h.Interfaces {
			ifs = append(ifs, i.Name+" "+i.Address)
		}
		fmt.Fprintf(w, "  host %s: ip netns exec %s ... (%s)\n", h.Name, h.Namespace, strings.Join(ifs, ", "))
		if h.Netstat != nil {
			fmt.Fprintf(w, "    its own counters (/proc/net/netstat, snmp): %d zero windows advertised, %d segments in, %d out, %d retransmitted\n",
				h.Netstat["TcpExtTCPToZeroWindowAdv"], h.Netstat["TcpInSegs"], h.Netstat["TcpOutSegs"], h.Netstat["TcpRetransSegs"])
		}
	}
}

// WriteByteMap prints the byte map as a small table, client to server, its
// closing line and the lab's verdict.
func (r *Result) WriteByteMap(w io.Writer) {
	m := r.ByteMap
	if m == nil {
		fmt.Fprintf(w, "\nbyte map: none (%s)\n", strings.TrimPrefix(m.Verdict(), "no byte map: "))
		return
	}
	when := "when the client's write first blocked"
	if m.Moment == "stall_peak" {
		when = "at the stall's peak; the client never blocked"
	}
	fmt.Fprintf(w, "\nbyte map, client to server (%s, %.1f s in):\n", when, m.AtSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, p := range m.Pieces {
		val := fmt.Sprintf("%s (%.0f)", config.HumanBytes(p.Bytes), p.Bytes)
		if !p.Measured {
			val = "? (" + p.Source + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", p.Hop, p.Place, val)
	}
	tw.Flush()
	fmt.Fprintf(w, "  %s\n  lab verdict: %s\n", m.ClosingLine(), m.Verdict())
}

func (n Number) format() string {
	switch n.Unit {
	case "bytes":
		return fmt.Sprintf("%s (%.0f)", config.HumanBytes(n.Value), n.Value)
	case "seconds":
		return fmt.Sprintf("%.2f s", n.Value)
	}
	return fmt.Sprintf("%.0f", n.Value)
}

// Row is one profile's line in the summary table: its result, or why it
// did not run.
type Row struct {
	Profile string
	Result  *Result
	Err     error
}

// WriteTable prints one line per profile: what the client wrote, how long
// its writes blocked, the most bytes it had in the pipe, and what the
// server read.
func WriteTable(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "profile\tbytes written\tblocked s\tstalls\tpeak in pipe\tserver read\tresult\tverdict\tmost held by\tbyte map closing error\t")
	for _, row := range rows {
		if row.Result == nil {
			msg := "failed"
			if row.Err != nil {
				msg = firstLine(row.Err.Error())
			}
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t%s\t-\t-\t-\t\n", row.Profile, msg)
			continue
		}
		s := row.Result.Client
		read := "-"
		if h := row.Result.Hop("bp-server"); h != nil {
			if v, ok := h.Value("bytes_read"); ok {
				read = config.HumanBytes(v)
			}
		}
		status := "ok"
		switch {
		case !s.Completed:
			status = "FAILED: " + firstLine(s.Error)
		case row.Err != nil:
			status = firstLine(row.Err.Error())
		}
		held, closing := "-", "-"
		if m := row.Result.ByteMap; m != nil {
			held = fmt.Sprintf("%s %s", m.MostHop, config.HumanBytes(m.MostHopBytes))
			closing = fmt.Sprintf("%+.0f B", m.ClosingErrorBytes)
			if !m.Closes {
				closing += " (DOES NOT CLOSE)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", row.Profile,
			config.HumanBytes(float64(s.BytesWritten)), s.BlockedSeconds, s.Stalls,
			config.HumanBytes(float64(s.PeakBytesInPipe)), read, status, verdictShort(s), held, closing)
	}
	tw.Flush()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
