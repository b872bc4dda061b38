package lab

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/netlab"
)

// wanSpec is a profile's hosts and links: the client, each hop and the
// server in network namespaces of their own (package netlab).
type wanSpec struct {
	hosts []string // client first, server last
	links []netlab.Link
}

// labHTTP is the lab's HTTP client: it reaches a host's pages from inside
// that host's namespace, and loopback ones as before.
var labHTTP = &http.Client{Transport: &http.Transport{DialContext: netlab.DialContext, MaxIdleConnsPerHost: 4}}

// hostFor is the host a process of the run runs on: bp-client on client,
// bp-server on server, a hop and its bp-sockets on the hop's host, and
// prog@host on host.
func hostFor(process string) string {
	if _, host, ok := strings.Cut(process, "@"); ok {
		return host // a fleet's processes: bp-client@client3
	}
	switch process {
	case "bp-client":
		return "client"
	case "bp-server":
		return "server"
	}
	return strings.TrimPrefix(strings.TrimSuffix(process, "-sockets"), "bp-")
}

// listenAddr is an address for a program on the host to listen on: on
// loopback a port that was free a moment ago; on a host of its own its
// address toward the client, with the next port of the run (the
// namespace is new, every port is free).
func (r *run) listenAddr(host string) (string, error) {
	if r.net == nil {
		return freeAddr()
	}
	ip := r.net.FirstAddr(host)
	if ip == "" {
		return "", fmt.Errorf("no host %s in this profile", host)
	}
	r.mu.Lock()
	r.port++
	port := 20000 + r.port
	r.mu.Unlock()
	return ip + ":" + strconv.Itoa(port), nil
}

// netSpec is the profile's network with the options' changes: -link
// settings by link name, tcp_rmem/tcp_wmem by host ("all": every host).
func netSpec(w *wanSpec, o Options) (netlab.Spec, error) {
	spec := netlab.Spec{Hosts: w.hosts, Links: append([]netlab.Link(nil), w.links...), Sysctls: map[string]map[string]string{}, LineBin: o.LineBin}
	for _, s := range o.Links {
		name, _, _ := strings.Cut(s, "=")
		found := false
		for i, l := range spec.Links {
			if l.Name() == name {
				nl, err := netlab.ParseLink(s, l)
				if err != nil {
					return spec, err
				}
				spec.Links[i], found = nl, true
			}
		}
		if !found {
			return spec, fmt.Errorf("-link %s: this profile's links are %s", s, linkNames(spec.Links))
		}
	}
	for key, settings := range map[string][]string{"net.ipv4.tcp_rmem": o.TCPRmem, "net.ipv4.tcp_wmem": o.TCPWmem} {
		for _, s := range settings {
			host, v, err := parseTCPMem(s)
			if err != nil {
				return spec, fmt.Errorf("%s %q: %w", key, s, err)
			}
			if host != "all" && !slices.Contains(w.hosts, host) {
				return spec, fmt.Errorf("%s %q: this profile's hosts are %s (or all)", key, s, strings.Join(w.hosts, ", "))
			}
			for _, h := range w.hosts {
				if host == h || host == "all" {
					if spec.Sysctls[h] == nil {
						spec.Sysctls[h] = map[string]string{}
					}
					spec.Sysctls[h][key] = strings.ReplaceAll(v, ",", " ")
				}
			}
		}
	}
	return spec, nil
}

// parseTCPMem reads "host=min,default,max": three byte counts, as the
// kernel's tcp_rmem and tcp_wmem take them, checked here so that a typo
// stops the lab before it builds anything, not in sysctl's words later.
func parseTCPMem(s string) (host, v string, err error) {
	host, v, ok := strings.Cut(s, "=")
	parts := strings.Split(v, ",")
	if !ok || host == "" || len(parts) != 3 {
		return "", "", fmt.Errorf("want host=min,default,max (host or all), e.g. server=4096,131072,33554432")
	}
	for _, p := range parts {
		if n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 31); err != nil || n == 0 {
			return "", "", fmt.Errorf("%q: want a byte count from 1 to 2147483647, e.g. 4096,131072,33554432", p)
		}
	}
	return host, v, nil
}

// CheckHostOptions reports a -link, -tcp-rmem or -tcp-wmem setting that
// does not fit the profile: a link or host it does not have, or a bad
// value. It makes nothing, so the lab can refuse before it builds.
func CheckHostOptions(p Profile, o Options) error {
	if p.wan == nil {
		if len(o.Links)+len(o.TCPRmem)+len(o.TCPWmem) > 0 {
			return fmt.Errorf("%s runs on loopback: -link, -tcp-rmem and -tcp-wmem apply to the host profiles (wan-*, fleet)", p.Name)
		}
		return nil
	}
	_, err := netSpec(p.wan, o)
	return err
}

// CheckFleetOptions is CheckHostOptions for the fleet profile of size f.
func CheckFleetOptions(f Fleet, o Options) error {
	_, err := netSpec(fleetSpec(f), o)
	return err
}

func linkNames(ls []netlab.Link) string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Name())
	}
	return strings.Join(out, ", ")
}

// startNet builds the profile's hosts, when it has any.
func (r *run) startNet(ctx context.Context, p Profile, res *Result) error {
	if p.wan == nil {
		return nil
	}
	spec, err := netSpec(p.wan, r.opts)
	if err != nil {
		return err
	}
	n, err := netlab.Create(ctx, spec)
	if err != nil {
		return fmt.Errorf("hosts: %w", err)
	}
	r.net = n
	res.Hosts = n.Hosts
	for _, l := range n.Links {
		r.progress("link %s", l)
	}
	for _, h := range n.Hosts {
		r.progress("host %s: namespace %s (ip netns exec %s ss -tin)", h.Name, h.Namespace, h.Namespace)
	}
	return nil
}

// netstatSettle is how long the lab waits, at most, for a host's
// counters to stop moving once its processes are stopped: the last
// segments (FINs, their acks) may still be on a 20 ms link.
const netstatSettle = time.Second

// readNetstat fills in each host's own kernel counters: read every 100 ms
// until two reads in a row agree on every host, or netstatSettle passed.
func (r *run) readNetstat() {
	if r.net == nil {
		return
	}
	deadline := time.Now().Add(netstatSettle)
	prev := r.netstatOnce()
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		now := r.netstatOnce()
		same := len(now) == len(prev)
		for i := range now {
			same = same && maps.Equal(now[i], prev[i])
		}
		prev = now
		if same {
			break
		}
	}
	// res.Hosts shares n.Hosts' array, so the results see these too.
	for i := range r.net.Hosts {
		r.net.Hosts[i].Netstat = prev[i]
	}
}

func (r *run) netstatOnce() []map[string]int64 {
	out := make([]map[string]int64, len(r.net.Hosts))
	for i, h := range r.net.Hosts {
		m, err := r.net.Netstat(h.Name)
		if err != nil {
			r.progress("netstat of host %s: %v", h.Name, err)
		}
		out[i] = m
	}
	return out
}

// stopNet removes the hosts; with Keep it first waits for Ctrl-C, so that
// a person can look at them (ip netns exec NS ss -tin, tshark -i ...).
func (r *run) stopNet(ctx context.Context) {
	if r.net == nil {
		return
	}
	if r.opts.Keep && r.opts.Hold != nil {
		r.opts.Hold(r.net.Hosts)
	}
	if err := r.net.Close(); err != nil {
		r.progress("removing the hosts: %v", err)
	}
	labHTTP.Transport.(*http.Transport).CloseIdleConnections()
}

// notRoot is why the host profiles cannot run, and which can.
func notRoot() error {
	var can []string
	for _, p := range Profiles {
		if p.wan == nil {
			can = append(can, p.Name)
		}
	}
	return fmt.Errorf("%w: %v; without root these profiles still run: %s", ErrMissing, netlab.ErrNotRoot, strings.Join(can, ", "))
}

// needsRoot reports the missing root for a host profile.
func (p Profile) needsRoot() error {
	if p.wan != nil && os.Geteuid() != 0 {
		return notRoot()
	}
	return nil
}

// rttPoll is how often the lab reads the kernel's round trip of each
// link's sender (ss -tin): a few samples per second are enough.
const rttPoll = 250 * time.Millisecond

// hopFunc starts a hop in front of an upstream and returns the target
// the client (or the hop in front of it) connects to.
type hopFunc = func(ctx context.Context, r *run, srv serverAddrs) (target string, h *hop, err error)

// startHops starts the profile's hops, the server's side first, each in
// front of the one started before it, and returns them client to server
// with the target the client connects to (target when there is no hop).
func (r *run) startHops(ctx context.Context, p Profile, srv serverAddrs, target string) (string, []*hop, error) {
	if p.hop == nil {
		return target, nil, nil
	}
	target, h, err := p.hop(ctx, r, srv)
	if err != nil {
		return "", nil, err
	}
	hs := []*hop{h}
	for i := len(p.front) - 1; i >= 0; i-- {
		if target, h, err = p.front[i](ctx, r, addrsOf(target)); err != nil {
			return "", nil, err
		}
		hs = append([]*hop{h}, hs...)
	}
	return target, hs, nil
}

// addrsOf is the upstream a hop in front of target connects to.
func addrsOf(target string) serverAddrs {
	if rest, ok := strings.CutPrefix(target, "ws://"); ok {
		return serverAddrs{http: strings.TrimSuffix(rest, "/ws")}
	}
	return serverAddrs{tcp: strings.TrimPrefix(target, "tcp://")}
}

// OnHosts reports whether the profile runs on hosts of their own (root).
func (p Profile) OnHosts() bool { return p.wan != nil }
