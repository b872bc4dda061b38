package flow

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
)

// SourceAddrs are local addresses a client binds its connections to, in
// turn (bp-client --source-addrs). One source address gives at most about
// 28,000 connections to one server port (the ephemeral port range), so
// 100,000 connections on loopback need several: 127.0.0.2 to 127.0.0.9
// all reach 127.0.0.1. The zero value and nil bind nothing.
type SourceAddrs struct {
	addrs []net.IP
	next  atomic.Uint64
}

// maxSourceAddrs bounds a range, so a typo cannot allocate millions.
const maxSourceAddrs = 65536

// ParseSourceAddrs reads a comma-separated list of addresses and ranges
// (first-last, same family): "127.0.0.2-127.0.0.9" or "10.0.0.5,10.0.0.7".
// An empty s is nil: the kernel picks.
func ParseSourceAddrs(s string) (*SourceAddrs, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	sa := &SourceAddrs{}
	for _, part := range strings.Split(s, ",") {
		first, last, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := netip.ParseAddr(strings.TrimSpace(first))
		if err != nil {
			return nil, fmt.Errorf("source address %q: %w", part, err)
		}
		b := a
		if isRange {
			if b, err = netip.ParseAddr(strings.TrimSpace(last)); err != nil {
				return nil, fmt.Errorf("source address %q: %w", part, err)
			}
			if a.Is4() != b.Is4() || b.Less(a) {
				return nil, fmt.Errorf("source range %q: want first-last of one family, first not after last", part)
			}
		}
		for x := a; ; x = x.Next() {
			if len(sa.addrs) == maxSourceAddrs {
				return nil, fmt.Errorf("source addresses: more than %d", maxSourceAddrs)
			}
			sa.addrs = append(sa.addrs, net.IP(x.AsSlice()))
			if x == b {
				break
			}
		}
	}
	return sa, nil
}

// Len is how many addresses there are.
func (s *SourceAddrs) Len() int {
	if s == nil {
		return 0
	}
	return len(s.addrs)
}

// localAddr is the next connection's local address, round-robin (nil:
// none set); any port.
func (s *SourceAddrs) localAddr() net.Addr {
	if s.Len() == 0 {
		return nil
	}
	i := s.next.Add(1) - 1
	return &net.TCPAddr{IP: s.addrs[i%uint64(len(s.addrs))]}
}

// dialer is a net.Dialer with the socket options: buffers, and the next
// source address if any.
func (o SocketOptions) dialer() net.Dialer {
	d := net.Dialer{Control: o.control}
	if la := o.Source.localAddr(); la != nil {
		d.LocalAddr = la
	}
	return d
}
