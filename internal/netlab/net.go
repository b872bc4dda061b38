package netlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Spec is the network to build: hosts and the links between them.
type Spec struct {
	Hosts []string // host names, e.g. client, haproxy, server
	Links []Link
	// Sysctls are set in a host's namespace before anything runs there,
	// e.g. "client": {"net.ipv4.tcp_wmem": "4096 16384 4194304"}.
	Sysctls map[string]map[string]string
	// LineBin is the delay line helper (scripts/delayline) that runs each
	// link's line in a process of its own; empty, the lines run in this
	// one. A test built with the race detector sets it (lineProc: why).
	LineBin string
}

// Host is one host of a running network, as -json lists it.
type Host struct {
	Name       string      `json:"name"`
	Namespace  string      `json:"namespace"`
	Interfaces []Interface `json:"interfaces"`
	// Netstat is the host's own kernel counters at the end of the run
	// (Net.Netstat, nstat's names), filled in by the lab once the run's
	// processes are stopped and the counters stopped moving.
	Netstat map[string]int64 `json:"netstat,omitempty"`
}

// Interface is a host's end of a link.
type Interface struct {
	Name    string `json:"name"`    // "to-<peer>"
	Address string `json:"address"` // with its prefix length: 10.99.0.1/24
	Peer    string `json:"peer"`    // the host at the link's other end
	Link    string `json:"link"`    // the link's name, a-b
	MTU     int    `json:"mtu"`
}

// Net is a built network. Close removes all of it.
type Net struct {
	Run     string // the run's id: the lab's pid and the network's number
	Hosts   []Host
	Links   []Link
	wires   []string // wire namespaces
	lines   []*DelayLine
	procs   []*lineProc // the lines helper processes run (Spec.LineBin)
	lineBin string
	ips     []string
	octet   int // the second octet of every address of this network
}

// perPacket makes every line take MTU-sized packets, as with loss: the
// benchmark's comparison.
var perPacket bool

// nets counts the networks this process built: each gets addresses of
// its own (10.<100+k%100>.x.y), so that DialContext, which finds a host by
// its address, tells the hosts of two networks of one process apart.
var nets atomic.Int32

// nsName is a host's namespace name: Prefix, the run (the lab's pid and
// the network's number in it), the host.
func nsName(run, host string) string { return Prefix + run + "-" + host }

// NS returns the host's namespace name.
func (n *Net) NS(host string) string { return nsName(n.Run, host) }

// Addr returns the host's address on the link to peer, without prefix
// length: where peer reaches it.
func (n *Net) Addr(host, peer string) string {
	for _, h := range n.Hosts {
		if h.Name != host {
			continue
		}
		for _, i := range h.Interfaces {
			if i.Peer == peer {
				return strings.Split(i.Address, "/")[0]
			}
		}
	}
	return ""
}

// FirstAddr returns the host's address on its first link.
func (n *Net) FirstAddr(host string) string {
	for _, h := range n.Hosts {
		if h.Name == host && len(h.Interfaces) > 0 {
			return strings.Split(h.Interfaces[0].Address, "/")[0]
		}
	}
	return ""
}

// Create builds the network: a namespace per host and per link (the wire),
// veths, addresses, routes, tbf and a delay line per link. Leftovers of
// runs that are no longer alive are removed first. On error everything
// made so far is removed.
func Create(ctx context.Context, spec Spec) (*Net, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	RemoveLeftovers(ctx)
	k := int(nets.Add(1))
	n := &Net{Run: strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(k), Links: spec.Links, octet: 100 + k%100, lineBin: spec.LineBin}
	if err := n.build(ctx, spec); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// ErrNotRoot says the lab needs root for namespaces.
var ErrNotRoot = errors.New("the hosts' network namespaces need root (run as root or with sudo)")

func (n *Net) build(ctx context.Context, spec Spec) error {
	for _, h := range spec.Hosts {
		ns := n.NS(h)
		if err := run(ctx, "ip", "netns", "add", ns); err != nil {
			return err
		}
		n.Hosts = append(n.Hosts, Host{Name: h, Namespace: ns})
		if err := inNS(ctx, ns, "ip", "link", "set", "lo", "up"); err != nil {
			return err
		}
		for k, v := range spec.Sysctls[h] {
			if err := inNS(ctx, ns, "sysctl", "-q", "-w", k+"="+v); err != nil {
				return err
			}
		}
	}
	for i, l := range spec.Links {
		if err := n.buildLink(ctx, i, l); err != nil {
			return fmt.Errorf("link %s: %w", l.Name(), err)
		}
	}
	return nil
}

// hostIndex is the host's position in n.Hosts, or -1.
func (n *Net) hostIndex(name string) int {
	for i, h := range n.Hosts {
		if h.Name == name {
			return i
		}
	}
	return -1
}

// ifName is an interface name toward a peer, within IFNAMSIZ.
func ifName(prefix, peer string) string {
	s := prefix + peer
	if len(s) > 15 {
		s = s[:15]
	}
	return s
}

// buildLink makes link i: its wire namespace, the two veths, addresses
// 10.N.2i.0/24 on A's side and 10.N.2i+1.0/24 on B's (the wire is .254
// on both), the routes, tbf each way and the delay line.
func (n *Net) buildLink(ctx context.Context, i int, l Link) error {
	ai, bi := n.hostIndex(l.A), n.hostIndex(l.B)
	if ai < 0 || bi < 0 {
		return fmt.Errorf("no host %s or %s", l.A, l.B)
	}
	wire := nsName(n.Run, "wire-"+l.Name())
	if err := run(ctx, "ip", "netns", "add", wire); err != nil {
		return err
	}
	n.wires = append(n.wires, wire)
	sides := []struct {
		host, peer string
		hi, net    int
	}{{l.A, l.B, ai, 2 * i}, {l.B, l.A, bi, 2*i + 1}}
	mtu := strconv.Itoa(l.mtu())
	for _, s := range sides {
		ns, hostIf, wireIf := n.NS(s.host), ifName("to-", s.peer), ifName("to-", s.host)
		subnet := fmt.Sprintf("10.%d.%d.", n.octet, s.net)
		other := fmt.Sprintf("10.%d.%d.0/24", n.octet, 4*i+1-s.net) // the other side's subnet: 2i <-> 2i+1
		steps := [][]string{
			{"ip", "link", "add", hostIf, "netns", ns, "mtu", mtu, "type", "veth", "peer", "name", wireIf, "netns", wire, "mtu", mtu},
			{"ip", "netns", "exec", ns, "ip", "addr", "add", subnet + "1/24", "dev", hostIf},
			{"ip", "netns", "exec", ns, "ip", "link", "set", hostIf, "up"},
			{"ip", "netns", "exec", ns, "ip", "route", "add", other, "via", subnet + "254"},
			{"ip", "netns", "exec", wire, "ip", "addr", "add", subnet + "254/24", "dev", wireIf},
			{"ip", "netns", "exec", wire, "ip", "link", "set", wireIf, "up"},
		}
		for _, st := range steps {
			if err := run(ctx, st[0], st[1:]...); err != nil {
				return err
			}
		}
		n.Hosts[s.hi].Interfaces = append(n.Hosts[s.hi].Interfaces, Interface{
			Name: hostIf, Address: subnet + "1/24", Peer: s.peer, Link: l.Name(), MTU: l.mtu()})
		register(subnet+"1", ns)
		n.ips = append(n.ips, subnet+"1")
	}
	return n.wireUp(ctx, wire, l)
}

// wireUp makes the wire forward through the delay line: what comes in from
// A is routed into dl-A, the line writes it into dl-B after the delay, and
// the kernel forwards it on to B (and the other way round); rp_filter is
// off because a packet from A comes in on dl-B. tbf shapes each egress.
func (n *Net) wireUp(ctx context.Context, wire string, l Link) error {
	for _, k := range []string{"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"} {
		if err := inNS(ctx, wire, "sysctl", "-q", "-w", k); err != nil {
			return err
		}
	}
	if err := inNS(ctx, wire, "ip", "link", "set", "lo", "up"); err != nil {
		return err
	}
	// With loss the devices take MTU-sized packets, so that each is lost
	// on its own: dropping a 64 KiB segment would lose 44 packets at once.
	offload := l.Loss == 0 && !perPacket
	var tuns [2]*os.File
	for j, h := range []string{l.A, l.B} {
		f, err := openTUN(wire, ifName("dl-", h), offload)
		if err != nil {
			for _, t := range tuns[:j] {
				t.Close()
			}
			return err
		}
		tuns[j] = f
	}
	if n.lineBin != "" {
		p, err := startLineProc(n.lineBin, l.Name(), tuns[0], tuns[1], l.RTT/2, l.Loss)
		if err != nil {
			return err
		}
		n.procs = append(n.procs, p)
	} else {
		n.lines = append(n.lines, startDelayLine(tuns[0], tuns[1], l.RTT/2, l.Loss))
	}
	for j, h := range []string{l.A, l.B} {
		dl, in, table := ifName("dl-", h), ifName("to-", h), strconv.Itoa(100+j)
		steps := [][]string{
			{"sysctl", "-q", "-w", "net.ipv4.conf." + dl + ".rp_filter=0"},
			{"ip", "link", "set", dl, "mtu", strconv.Itoa(l.mtu()), "up"},
			{"ip", "route", "add", "default", "dev", dl, "table", table},
			{"ip", "rule", "add", "iif", in, "lookup", table},
		}
		for _, st := range steps {
			if err := inNS(ctx, wire, st[0], st[1:]...); err != nil {
				return err
			}
		}
		if l.Rate > 0 {
			if err := inNS(ctx, wire, "tc", tbfArgs(in, l.Rate)...); err != nil {
				return err
			}
		}
	}
	return nil
}

// tbfArgs shape dev's egress to rate: a burst of a millisecond's bytes (at
// least 16 KiB, so a TSO segment passes) and a queue of 5 ms, a shallow
// router queue, so a saturated link adds little to the round trip. (A
// tenth of the round trip was tried: 20 ms at 1 Gbit/s then fell to
// 0.6 Gbit/s, cubic backing off below the rate after each loss.)
func tbfArgs(dev string, rate uint64) []string {
	bytesPerMs := rate / 8 / 1000
	burst := max(16<<10, bytesPerMs)
	limit := max(64<<10, 5*bytesPerMs)
	return []string{"qdisc", "replace", "dev", dev, "root", "tbf", "rate", strconv.FormatUint(rate, 10) + "bit",
		"burst", strconv.FormatUint(burst, 10), "limit", strconv.FormatUint(limit, 10)}
}

// Close stops the delay lines and removes every namespace of the run
// (their veths and qdiscs go with them). Processes in them must be stopped
// first; Close kills any left, by the pids ip netns lists.
func (n *Net) Close() error {
	for _, d := range n.lines {
		d.Close()
	}
	var errs []error
	for _, p := range n.procs {
		errs = append(errs, p.Close())
	}
	n.procs = nil // a second Close must not wait for them again
	for _, ip := range n.ips {
		unregister(ip)
	}
	for _, ns := range append(n.wires, n.hostNamespaces()...) {
		errs = append(errs, removeNS(ns))
	}
	return errors.Join(errs...)
}

func (n *Net) hostNamespaces() []string {
	var out []string
	for _, h := range n.Hosts {
		out = append(out, h.Namespace)
	}
	return out
}

// removeNS kills what still runs in the namespace and deletes it.
func removeNS(ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	killIn(ctx, ns)
	return run(ctx, "ip", "netns", "del", ns)
}
