package verdict

import (
	"fmt"
	"slices"
	"strings"
)

// fleetPath gives the fleet's verdict what its instances' verdicts agree
// on about the path, so that the merged report names the clients' peer as
// an instance's report names its own: the echoed path (Via) when every
// instance has one and they are equal; AddressRewritten when every
// instance says and all say the same, with the first instance's addresses
// for the words; and a reason saying which. Where the instances disagree
// the field stays absent, the reason says how many differ, and the
// confidence drops a step, as one run's verdict does when its connections
// disagree. An instance that wrote nothing (nil) knows nothing of the
// path, so the fleet does not either.
func fleetPath(v *Verdict, vs []*Verdict) {
	v.fleet = true
	var via []string
	viaKnown, addrKnown, rewritten := len(vs) > 0, len(vs) > 0, 0
	for i, iv := range vs {
		if iv == nil {
			viaKnown, addrKnown = false, false
			break
		}
		switch {
		case iv.Via == nil:
			viaKnown = false
		case i == 0:
			via = *iv.Via
		case !slices.Equal(via, *iv.Via):
			viaKnown = false
		}
		if iv.AddressRewritten == nil {
			addrKnown = false
		} else if *iv.AddressRewritten {
			rewritten++
		}
		if v.SeenFrom == "" && iv.SeenFrom != "" {
			v.SeenFrom, v.LocalAddr = iv.SeenFrom, iv.LocalAddr
		}
	}
	if viaKnown {
		v.Via = ptr(append([]string{}, via...))
	}
	if addrKnown && (rewritten == 0 || rewritten == len(vs)) {
		v.AddressRewritten = ptr(rewritten > 0)
	}
	v.Reasons = append(v.Reasons, fleetPathReason(*v, addrKnown, rewritten, len(vs)))
	if addrKnown && rewritten > 0 && rewritten < len(vs) {
		v.Confidence = stepDown(v.Confidence)
	}
}

// stepDown is one confidence level less sure than c.
func stepDown(c string) string {
	if c == High {
		return Medium
	}
	return Low
}

// fleetPathReason is the fleet verdict's reason about the path, in the
// order one run's verdict looks at it (notes.path): the echoed bp-relays,
// else what the addresses say, else the echoed path alone.
func fleetPathReason(v Verdict, addrKnown bool, rewritten, n int) string {
	switch {
	case v.Via != nil && len(*v.Via) > 0:
		return "the path, as every instance's server echoed it: client -> " + strings.Join(*v.Via, " -> ") +
			" -> server; the window the clients see is their peer's, " + (*v.Via)[0] + "'s, not the server's"
	case v.AddressRewritten != nil && *v.AddressRewritten:
		return "every instance's server sees its connections from another address than the client's own end of them (" + v.seenWords() +
			"): a hop that did not name itself sits in between, a proxy or load balancer that ended TCP (HAProxy, nginx), whose kernel's window the clients see, or a NAT that only rewrote the address (then the window is the server's)"
	case v.AddressRewritten != nil:
		return "every instance's server sees " + v.ownWords() +
			": no hop that ended TCP sits in between (short of a transparent proxy that keeps the client's address and port), so the clients' peer is the server"
	case addrKnown:
		return fmt.Sprintf("instances disagree: on %d of the %d the server sees the connections from another address than the client's own end (a hop on some paths, not on others), so whose window the clients see differs between them", rewritten, n)
	case v.Via == nil:
		return "not every instance's server echoed the path, or they echoed different ones: the clients' peer, whose window they see, may be a hop rather than the server"
	}
	return "no bp-relay on the path (every instance's server said so): the clients' peer is the server, unless a proxy that does not name itself (HAProxy, nginx) sits in between"
}
