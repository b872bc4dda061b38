package netlab

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Link is one link between two hosts, the same in both directions.
type Link struct {
	A, B string        // host names, A nearer the client
	Rate uint64        // bits per second; 0: not shaped
	RTT  time.Duration // round trip the link adds (half each way)
	Loss float64       // probability a packet is dropped, each way (0.001 = 0.1%)
	MTU  int           // 0: 1500
}

// Name is the link's name on the command line and in reports: "a-b".
func (l Link) Name() string { return l.A + "-" + l.B }

func (l Link) mtu() int {
	if l.MTU == 0 {
		return 1500
	}
	return l.MTU
}

// String is the link in ParseLink's syntax.
func (l Link) String() string {
	s := l.Name() + "=" + FormatRate(l.Rate) + "," + l.RTT.String()
	if l.Loss > 0 {
		s += "," + strconv.FormatFloat(l.Loss*100, 'g', -1, 64) + "%"
	}
	if l.MTU != 0 {
		s += ",mtu=" + strconv.Itoa(l.MTU)
	}
	return s
}

// FormatRate writes bits per second as tc does: 100mbit, 1gbit.
func FormatRate(bits uint64) string {
	switch {
	case bits == 0:
		return "unshaped"
	case bits%1_000_000_000 == 0:
		return strconv.FormatUint(bits/1_000_000_000, 10) + "gbit"
	case bits%1_000_000 == 0:
		return strconv.FormatUint(bits/1_000_000, 10) + "mbit"
	case bits%1000 == 0:
		return strconv.FormatUint(bits/1000, 10) + "kbit"
	}
	return strconv.FormatUint(bits, 10) + "bit"
}

// ParseLink reads "a-b=RATE,RTT[,LOSS%][,mtu=N]" (e.g.
// client-lb=100mbit,40ms,0.1%) into changes of base: every part after
// the name is optional and may come in any order, so "-link
// client-haproxy=5ms" changes only the round trip.
func ParseLink(s string, base Link) (Link, error) {
	name, parts, ok := strings.Cut(s, "=")
	if !ok {
		return base, fmt.Errorf("link %q: want a-b=RATE,RTT[,LOSS%%][,mtu=N]", s)
	}
	a, b, ok := strings.Cut(name, "-")
	if !ok || a == "" || b == "" {
		return base, fmt.Errorf("link %q: the name is two hosts joined by '-', e.g. client-server", name)
	}
	l := base
	l.A, l.B = a, b
	for _, p := range strings.Split(parts, ",") {
		p = strings.TrimSpace(strings.ToLower(p))
		var err error
		switch {
		case p == "":
		case strings.HasPrefix(p, "mtu="):
			l.MTU, err = strconv.Atoi(p[4:])
			if err == nil && (l.MTU < 576 || l.MTU > 65535) {
				err = fmt.Errorf("mtu out of 576..65535")
			}
		case strings.HasSuffix(p, "%"):
			var pct float64
			pct, err = strconv.ParseFloat(p[:len(p)-1], 64)
			if err == nil && (pct < 0 || pct >= 100) {
				err = fmt.Errorf("loss out of 0..100%%")
			}
			l.Loss = pct / 100
		case strings.HasSuffix(p, "bit"):
			l.Rate, err = parseRate(p)
		default:
			l.RTT, err = parseRTT(p)
		}
		if err != nil {
			return base, fmt.Errorf("link %s: %q: %w", name, p, err)
		}
	}
	return l, nil
}

// parseRate reads tc's rate units: bit, kbit, mbit, gbit (decimal).
func parseRate(s string) (uint64, error) {
	mult := uint64(1)
	num := strings.TrimSuffix(s, "bit")
	switch {
	case strings.HasSuffix(num, "k"):
		mult, num = 1000, num[:len(num)-1]
	case strings.HasSuffix(num, "m"):
		mult, num = 1_000_000, num[:len(num)-1]
	case strings.HasSuffix(num, "g"):
		mult, num = 1_000_000_000, num[:len(num)-1]
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("rate %q: want e.g. 100mbit, 1gbit", s)
	}
	return uint64(v * float64(mult)), nil
}

// parseRTT reads a link's round trip, a Go duration of zero or more. A
// part that is no duration is named as what the syntax allows, not as
// the duration parser's complaint: "100mbps" is a misspelt rate more
// often than a bad duration.
func parseRTT(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("want a rate (100mbit), a round trip (30ms), a loss (0.1%%) or mtu=N")
	case d < 0:
		return 0, fmt.Errorf("round trip %s is negative", d)
	}
	return d, nil
}
