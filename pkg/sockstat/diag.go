package sockstat

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// DiagSocket is one TCP socket of the host (its network namespace) as one
// sock_diag dump reported it: who it connects, its queues and TCP_INFO as
// a Sample, and its memory. The dump reads sockets of every process, so
// the queues come from the dump's message (idiag_rqueue and idiag_wqueue:
// the figures SIOCINQ and SIOCOUTQ return) and the unsent bytes from
// tcpi_notsent_bytes (what SIOCOUTQNSD returns), not from ioctls.
type DiagSocket struct {
	// Cookie is the kernel's id of the socket, unique in the namespace
	// while the socket lives (a reused address pair gets a new one).
	Cookie        uint64
	Family, State uint8
	Local, Remote netip.AddrPort
	INode         uint32
	// Sample holds the queues and the TCP_INFO fields; Has says which
	// are real, as for a Reader's.
	Sample Sample
	// Mem is INET_DIAG_SKMEMINFO (what ss -m prints as skmem), valid
	// when HasMem.
	Mem    DiagMem
	HasMem bool
}

// DiagMem is a socket's memory as sock_diag reports it, in bytes.
type DiagMem struct {
	// RecvAlloc is the memory the receive queue holds (skmem r), with
	// its overhead; RecvBuffer the limit SO_RCVBUF set (rb).
	RecvAlloc, RecvBuffer int
	// SendAlloc is memory of sent packets in flight below TCP (t),
	// SendQueued the memory the send queue holds (w), SendBuffer the
	// limit SO_SNDBUF set (tb).
	SendAlloc, SendQueued, SendBuffer int
	// Drops counts packets dropped before they reached the socket (d).
	Drops int
}

// Side is which side of a hop a socket is on.
type Side int

const (
	// Downstream sockets are the hop's connections towards its clients:
	// accepted on a port where the hop listens.
	Downstream Side = iota
	// Upstream sockets are the hop's connections towards its servers:
	// dialled to a port the hop forwards to.
	Upstream
)

// NumSides is the number of Side values.
const NumSides = 2

// Sides are the names of the sides, in Side order: the values of the
// side label.
var Sides = [NumSides]string{"downstream", "upstream"}

func (s Side) String() string { return Sides[s] }

// HopPorts says which sockets belong to a hop: a socket whose local port
// is a downstream port is the hop's downstream side (a connection a client
// made to the hop's listener); otherwise one whose remote port is an
// upstream port is its upstream side (a connection the hop made to a
// server). A socket matching neither is none of the hop's.
type HopPorts struct {
	Downstream, Upstream []uint16
}

// portSet is a set of ports, a bit each.
type portSet [65536 / 64]uint64

func (p *portSet) add(port uint16)      { p[port/64] |= 1 << (port % 64) }
func (p *portSet) has(port uint16) bool { return p[port/64]&(1<<(port%64)) != 0 }
func newPortSet(ports []uint16) (p *portSet) {
	p = new(portSet)
	for _, x := range ports {
		p.add(x)
	}
	return p
}

// hopClassifier classifies sockets by HopPorts.
type hopClassifier struct{ down, up *portSet }

func newHopClassifier(p HopPorts) hopClassifier {
	return hopClassifier{down: newPortSet(p.Downstream), up: newPortSet(p.Upstream)}
}

// side returns the socket's side of the hop, or false when it is none of
// the hop's.
func (c hopClassifier) side(s *DiagSocket) (Side, bool) {
	switch {
	case c.down.has(s.Local.Port()):
		return Downstream, true
	case c.up.has(s.Remote.Port()):
		return Upstream, true
	}
	return 0, false
}

// ParsePorts parses a comma-separated list of TCP ports ("8080,8443"); an
// empty list is none. A port repeated is kept once.
func ParsePorts(list string) ([]uint16, error) {
	var ports []uint16
	seen := map[uint16]bool{}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%q is not a port (want whole numbers 1 to 65535, comma-separated)", f)
		}
		if !seen[uint16(n)] {
			seen[uint16(n)] = true
			ports = append(ports, uint16(n))
		}
	}
	return ports, nil
}
