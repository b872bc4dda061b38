package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/netlab"
	"github.com/go-backpressure/go-backpressure/pkg/report"
)

// Fleet is the fleet profile's size: client hosts, connections per
// client, server hosts.
type Fleet struct{ Clients, Connections, Servers int }

// DefaultFleet is the fleet: 8 × 250 connections → HAProxy → 2.
var DefaultFleet = Fleet{Clients: 8, Connections: 250, Servers: 2}

// ParseFleet reads "CLIENTSxCONNECTIONSxSERVERS", e.g. 8x250x2.
func ParseFleet(s string) (Fleet, error) {
	parts := strings.Split(s, "x")
	if len(parts) != 3 {
		return Fleet{}, fmt.Errorf("fleet %q: want CLIENTSxCONNECTIONSxSERVERS, e.g. 8x250x2", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 1 || v > 10000 || (i != 1 && v > 40) {
			return Fleet{}, fmt.Errorf("fleet %q: %q out of range (hosts 1..40, connections 1..10000)", s, p)
		}
		n[i] = v
	}
	return Fleet{Clients: n[0], Connections: n[1], Servers: n[2]}, nil
}

// FleetHost is one client or server host of a fleet run and its numbers.
type FleetHost struct {
	Host        string          `json:"host"`
	Namespace   string          `json:"namespace"`
	Client      *report.Summary `json:"client,omitempty"` // a client host's report
	Numbers     Hop             `json:"numbers"`          // its bp binary's numbers, scraped at the end
	Connections float64         `json:"connections"`      // bp_connections_opened_total
	// ZeroWindowAdv is the host's own bp_host_tcp_to_zero_window_adv_total:
	// each host has a network stack, so it is this host's alone.
	ZeroWindowAdv float64 `json:"host_to_zero_window_adv"`
}

// FleetResult is one fleet run: every client and server host, HAProxy.
type FleetResult struct {
	Fleet   Fleet         `json:"fleet"`
	Hosts   []netlab.Host `json:"hosts"`
	Clients []FleetHost   `json:"clients"`
	Servers []FleetHost   `json:"servers"`
	HAProxy Hop           `json:"haproxy"`
	Dir     string        `json:"-"`
}

// fleetSpec is the fleet's hosts and links: each client host to the LB
// over 1 Gbit/s, 20 ms; the LB to each server over 10 Gbit/s, 0.5 ms.
func fleetSpec(f Fleet) *wanSpec {
	w := &wanSpec{}
	for i := 1; i <= f.Clients; i++ {
		h := "client" + strconv.Itoa(i)
		w.hosts = append(w.hosts, h)
		w.links = append(w.links, netlab.Link{A: h, B: "haproxy", Rate: 1_000_000_000, RTT: 20 * time.Millisecond})
	}
	w.hosts = append(w.hosts, "haproxy")
	for j := 1; j <= f.Servers; j++ {
		h := "server" + strconv.Itoa(j)
		w.hosts = append(w.hosts, h)
		w.links = append(w.links, netlab.Link{A: "haproxy", B: h, Rate: 10_000_000_000, RTT: 500 * time.Microsecond})
	}
	return w
}

// RunFleet runs the fleet profile: a bp-server on each server host,
// HAProxy balancing them round robin, a bp-client with f.Connections on
// each client host, all at once; every host's numbers are scraped at the
// end, and everything is stopped and removed.
func RunFleet(ctx context.Context, f Fleet, o Options) (*FleetResult, error) {
	p := Profile{Name: "fleet", Needs: "haproxy", wan: fleetSpec(f)}
	if err := p.Missing(o.Bin); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bp-lab-fleet-")
	if err != nil {
		return nil, err
	}
	r := &run{opts: o, dir: dir}
	res := &FleetResult{Fleet: f, Dir: dir}
	defer r.finish(ctx)
	var one Result
	if err := r.startNet(ctx, p, &one); err != nil {
		return nil, err
	}
	res.Hosts = one.Hosts
	servers, err := r.startFleetServers(ctx, f)
	if err != nil {
		return nil, err
	}
	lb, err := r.startFleetHAProxy(ctx, servers)
	if err != nil {
		return nil, err
	}
	clients, pipes, err := r.runFleetClients(ctx, f)
	res.Clients = clients
	// The report pipes close only once the clients are done with.
	defer func() {
		for _, p := range pipes {
			p.Close()
		}
	}()
	if err != nil {
		return res, err
	}
	return res, r.scrapeFleet(ctx, res, servers, lb)
}

// startFleetServers starts a bp-server on each server host.
func (r *run) startFleetServers(ctx context.Context, f Fleet) ([]serverAddrs, error) {
	var out []serverAddrs
	for j := 1; j <= f.Servers; j++ {
		host := "server" + strconv.Itoa(j)
		srv, err := r.startServerOn(ctx, "bp-server@"+host, host)
		if err != nil {
			return nil, err
		}
		out = append(out, srv)
	}
	return out, nil
}

// fleetListen is the port HAProxy listens on, on every address of its
// host: each client host reaches it over its own link.
const fleetListen = 20080

// startFleetHAProxy renders a config with one server line per server host
// and runs HAProxy on its host.
func (r *run) startFleetHAProxy(ctx context.Context, servers []serverAddrs) (*hop, error) {
	stats, err := r.listenAddr("haproxy")
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global\n    maxconn 9000\n    tune.bufsize 16384\ndefaults\n    mode tcp\n    timeout connect 5s\n"+
		"    timeout client 1m\n    timeout server 1m\n    timeout tunnel 1h\nfrontend bp_in\n    bind 0.0.0.0:%d\n"+
		"    default_backend bp_server\nbackend bp_server\n    balance roundrobin\n", fleetListen)
	for i, s := range servers {
		fmt.Fprintf(&b, "    server s%d %s\n", i+1, s.tcp)
	}
	fmt.Fprintf(&b, "frontend stats\n    mode http\n    bind %s\n    timeout client 10s\n"+
		"    http-request use-service prometheus-exporter if { path /metrics }\n", stats)
	cfg := filepath.Join(r.dir, "haproxy-fleet.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	p, err := r.start("haproxy", "haproxy", []string{"-f", cfg, "-db"}, nil, nil)
	if err != nil {
		return nil, err
	}
	h := &hop{name: "haproxy", proc: p, metricsURL: "http://" + stats + "/metrics", livePage: true}
	return h, waitHTTP(ctx, p, h.metricsURL, 10*time.Second)
}

// runFleetClients runs a bp-client on every client host at once, each
// against HAProxy's address on its own link, and waits for every report.
func (r *run) runFleetClients(ctx context.Context, f Fleet) ([]FleetHost, []io.Closer, error) {
	out := make([]FleetHost, f.Clients)
	errs := make([]error, f.Clients)
	var wg sync.WaitGroup
	var pipes []io.Closer
	var mu sync.Mutex
	for i := range out {
		host := "client" + strconv.Itoa(i+1)
		metrics, err := r.listenAddr(host)
		if err != nil {
			return nil, pipes, err
		}
		out[i] = FleetHost{Host: host, Namespace: r.net.NS(host), Client: &report.Summary{},
			Numbers: Hop{Source: "http://" + metrics + "/metrics"}}
		target := fmt.Sprintf("tcp://%s:%d", r.net.Addr("haproxy", host), fleetListen)
		flags := append(append([]string(nil), r.opts.Client...), "--connections", strconv.Itoa(f.Connections))
		wg.Add(1)
		go func() {
			defer wg.Done()
			rd, err := r.runClientOn(ctx, "bp-client@"+host, target, metrics, out[i].Client, flags)
			if rd != nil {
				mu.Lock()
				pipes = append(pipes, rd)
				mu.Unlock()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return out, pipes, fmt.Errorf("%s: %w", out[i].Host, err)
		}
	}
	return out, pipes, nil
}

// scrapeFleet adds every host's numbers once its connections have closed.
func (r *run) scrapeFleet(ctx context.Context, res *FleetResult, servers []serverAddrs, lb *hop) error {
	fill := func(fh *FleetHost, name, url string) error {
		n, err := bpNumbers(ctx, name, url)
		if err != nil {
			return err
		}
		ss, err := scrape(ctx, url)
		if err != nil {
			return err
		}
		fh.Numbers = n
		fh.Connections, _ = ss.sum("bp_connections_opened_total", nil)
		fh.ZeroWindowAdv, _ = ss.sum("bp_host_tcp_to_zero_window_adv_total", nil)
		return nil
	}
	for i := range res.Clients {
		c := &res.Clients[i]
		if err := fill(c, "bp-client@"+c.Host, c.Numbers.Source); err != nil {
			return err
		}
	}
	for j, s := range servers {
		host := "server" + strconv.Itoa(j+1)
		fh := FleetHost{Host: host, Namespace: r.net.NS(host)}
		if err := fill(&fh, "bp-server@"+host, "http://"+s.http+"/metrics"); err != nil {
			return err
		}
		res.Servers = append(res.Servers, fh)
	}
	hn, err := lb.numbers(ctx)
	res.HAProxy = hn
	return err
}

// WriteText prints one line per host and the totals.
func (res *FleetResult) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "host\tconnections\twritten/read\tacked\tblocked\thost zero-window adv\n")
	var written, read float64
	for _, c := range res.Clients {
		s := c.Client
		written += float64(s.BytesWritten)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.2f s\t%.0f\n", c.Host, s.Connections, human(float64(s.BytesWritten)),
			human(float64(s.BytesAcked)), s.BlockedSeconds, c.ZeroWindowAdv)
	}
	for _, s := range res.Servers {
		v, _ := s.Numbers.Value("bytes_read")
		read += v
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t\t\t%.0f\n", s.Host, s.Connections, human(v), s.ZeroWindowAdv)
	}
	tw.Flush()
	in, _ := res.HAProxy.Value("frontend_bytes_in")
	fmt.Fprintf(w, "totals: clients wrote %.0f bytes, servers read %.0f (difference %+.0f); HAProxy took %.0f from the clients\n",
		written, read, read-written, in)
}
