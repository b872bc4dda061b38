package verdict

import (
	"fmt"
	"net/netip"
)

// A hop that names itself (bp-relay) is in the path the server echoes; one
// that does not (HAProxy, nginx, a load balancer) is not. The server's
// first ack also says the address it sees the connection from, and
// this client knows its own end of it: the same ip:port means nothing in
// between ended TCP or rewrote the address, so the window this client
// sees is the server's (short of a transparent proxy that keeps the
// client's address and port); another means a hop sits in between.

// sameAddr compares the address the server sees a connection from with
// the client's own end of it: ok false when either is missing or is no
// ip:port (an older server, a unix socket).
func sameAddr(seenFrom, local string) (same, ok bool) {
	s, err := netip.ParseAddrPort(seenFrom)
	if err != nil {
		return false, false
	}
	l, err := netip.ParseAddrPort(local)
	if err != nil {
		return false, false
	}
	// A dual-stack listener may show an IPv4 client as ::ffff:a.b.c.d.
	return s.Addr().Unmap().WithZone("") == l.Addr().Unmap().WithZone("") && s.Port() == l.Port(), true
}

// addressCount is how the connections' addresses compared.
type addressCount struct {
	compared, rewritten int
}

// addresses sets the verdict's addresses, from the first connection, and
// AddressRewritten when every connection's server said and they all
// agree; it returns the counts for the words.
func addresses(v *Verdict, tls []Timeline) addressCount {
	var n addressCount
	for _, tl := range tls {
		same, ok := sameAddr(tl.SeenFrom, tl.LocalAddr)
		if !ok {
			continue
		}
		if n.compared == 0 {
			v.SeenFrom, v.LocalAddr = tl.SeenFrom, tl.LocalAddr
		}
		n.compared++
		if !same {
			n.rewritten++
		}
	}
	if n.compared > 0 && n.compared == len(tls) && (n.rewritten == 0 || n.rewritten == n.compared) {
		v.AddressRewritten = ptr(n.rewritten > 0)
	}
	return n
}

// seenWords are the two addresses in words: "the server sees this
// connection from 10.101.2.1:40312, this client is 10.101.0.1:51234"
// (the first connection, with several).
func (v Verdict) seenWords() string {
	if v.fleet {
		return fmt.Sprintf("the server sees %s from %s, that client is %s", v.which(), v.SeenFrom, v.LocalAddr)
	}
	return fmt.Sprintf("the server sees %s from %s, this client is %s", v.which(), v.SeenFrom, v.LocalAddr)
}

// ownWords say the server sees the connections from this client's own
// address: "this connection from this client's own address, 127.0.0.1:51234"
// ("every connection ..., the first one's 127.0.0.1:51234", with several).
func (v Verdict) ownWords() string {
	if v.fleet {
		return "every connection from its client's own address, the first instance's first one's " + v.LocalAddr
	}
	if v.Connections > 1 {
		return "every connection from this client's own address, the first one's " + v.LocalAddr
	}
	return "this connection from this client's own address, " + v.LocalAddr
}

// which names the connection the addresses are of.
func (v Verdict) which() string {
	if v.fleet {
		return "the first instance's first connection"
	}
	if v.Connections > 1 {
		return "the first connection"
	}
	return "this connection"
}

// addressPath notes what the addresses say of a path on which no bp-relay
// named itself (or the server did not say): ok false when they say
// nothing, and the words fall back on the echoed path alone.
func (n *notes) addressPath(v Verdict, c addressCount) bool {
	switch {
	case v.AddressRewritten != nil && *v.AddressRewritten:
		n.add(0, "the server sees %s from %s, not from this client's own end of it (%s): a hop that did not name itself sits in between, a proxy or load balancer that ended TCP (HAProxy, nginx), whose kernel's window this client sees, or a NAT that only rewrote the address (then the window is the server's)", v.which(), v.SeenFrom, v.LocalAddr)
	case v.AddressRewritten != nil:
		n.add(0, "the server sees %s: no hop that ended TCP sits in between (short of a transparent proxy that keeps the client's address and port), so this client's peer is the server", v.ownWords())
	case c.compared > 0 && c.rewritten > 0 && c.rewritten < c.compared:
		n.add(1, "connections disagree: the server sees %d of the %d compared from another address than this client's own end (a hop on some paths, not on others), so whose window this client sees differs between them", c.rewritten, c.compared)
	default:
		return false
	}
	return true
}
