package sockstat

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ZeroWindowCounters are the host-wide TcpExt counters about closed windows,
// summed over every TCP socket of the network namespace since boot. They show
// flow control at the scale of the host: how often this host's readers fell
// behind and closed their window. They count window advertisements this host
// sends, so a writer host sees them stay flat; the writer's view is the peer
// window in a Sample.
type ZeroWindowCounters struct {
	// ToZeroWindowAdv is TCPToZeroWindowAdv: times a receive window we
	// advertised went from open to zero.
	ToZeroWindowAdv uint64
	// FromZeroWindowAdv is TCPFromZeroWindowAdv: times it reopened from zero.
	FromZeroWindowAdv uint64
	// WantZeroWindowAdv is TCPWantZeroWindowAdv: times the receive buffer
	// called for a zero window (the window advertised may still be open,
	// because the kernel never shrinks an offered window).
	WantZeroWindowAdv uint64
	// ZeroWindowDrop is TCPZeroWindowDrop: segments dropped because they
	// arrived while our window was zero.
	ZeroWindowDrop uint64

	// Present says which counters the kernel reported. Kernels add
	// counters over time; a counter it lacks is absent, not zero.
	Present ZeroWindowFields
}

// ZeroWindowFields is a set of ZeroWindowCounters fields, as a bitmask.
type ZeroWindowFields uint8

// The counters of ZeroWindowCounters.
const (
	HasToZeroWindowAdv ZeroWindowFields = 1 << iota
	HasFromZeroWindowAdv
	HasWantZeroWindowAdv
	HasZeroWindowDrop
)

// netstatSection is the line prefix of the TcpExt counters.
const netstatSection = "TcpExt:"

// ParseNetstat reads the TcpExt zero-window counters from the content of
// /proc/net/netstat. That file holds pairs of lines, a header with the
// counter names and a line with their values, each starting with the same
// section name ("TcpExt: A B" / "TcpExt: 1 2"). A counter missing from the
// file is left out of Present. It is an error if there is no TcpExt section,
// or if its header and value lines do not match.
func ParseNetstat(r io.Reader) (ZeroWindowCounters, error) {
	var c ZeroWindowCounters
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 16<<10), 1<<20)
	found := false
	for sc.Scan() {
		header := sc.Text()
		if header == "" {
			continue
		}
		section, _, ok := strings.Cut(header, " ")
		if !ok || !strings.HasSuffix(section, ":") {
			return c, fmt.Errorf("parse netstat: line without section name: %.40q", header)
		}
		if !sc.Scan() {
			if err := sc.Err(); err != nil {
				return c, fmt.Errorf("parse netstat: %w", err)
			}
			return c, fmt.Errorf("parse netstat: %s header without value line", section)
		}
		values := sc.Text()
		valueSection, _, _ := strings.Cut(values, " ")
		if valueSection != section {
			return c, fmt.Errorf("parse netstat: %s header followed by %.40q", section, values)
		}
		if section != netstatSection {
			continue
		}
		if found {
			return c, fmt.Errorf("parse netstat: %s appears twice", section)
		}
		found = true
		if err := c.parseTcpExt(header, values); err != nil {
			return c, fmt.Errorf("parse netstat: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("parse netstat: %w", err)
	}
	if !found {
		return c, errors.New("parse netstat: no " + netstatSection + " section")
	}
	return c, nil
}

// parseTcpExt fills c from one TcpExt header line and its value line.
func (c *ZeroWindowCounters) parseTcpExt(header, values string) error {
	names := strings.Fields(header)[1:]
	numbers := strings.Fields(values)[1:]
	if len(names) != len(numbers) {
		return fmt.Errorf("%s has %d names and %d values", netstatSection, len(names), len(numbers))
	}
	for i, name := range names {
		var dst *uint64
		var bit ZeroWindowFields
		switch name {
		case "TCPToZeroWindowAdv":
			dst, bit = &c.ToZeroWindowAdv, HasToZeroWindowAdv
		case "TCPFromZeroWindowAdv":
			dst, bit = &c.FromZeroWindowAdv, HasFromZeroWindowAdv
		case "TCPWantZeroWindowAdv":
			dst, bit = &c.WantZeroWindowAdv, HasWantZeroWindowAdv
		case "TCPZeroWindowDrop":
			dst, bit = &c.ZeroWindowDrop, HasZeroWindowDrop
		default:
			continue
		}
		v, err := strconv.ParseUint(numbers[i], 10, 64)
		if err != nil {
			return fmt.Errorf("%s %s: %w", netstatSection, name, err)
		}
		*dst = v
		c.Present |= bit
	}
	return nil
}
