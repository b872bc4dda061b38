// Command lab-observe runs docker-compose.yml's topology natively, from the
// same files in deploy/, and leaves it running with Prometheus scraping
// every hop, until Ctrl-C:
//
//	bp-client --loop -> bp-relay -> HAProxy -> bp-server, and Prometheus
//
//	go run ./scripts/lab-observe      # make lab-observe
//	go run ./scripts/lab-observe -hosts   # each on a host of its own, shaped links (root)
//	go run ./scripts/lab-observe -hosts -link client-relay=100mbit,40ms
//
// It needs HAProxy and Prometheus from Debian's packages
// (sudo apt-get install -y haproxy prometheus) and the binaries in bin/
// (make build). Grafana is not in Debian: query Prometheus directly, or
// point a Grafana of your own at it and import
// deploy/grafana/dashboards/go-backpressure.json. See docs/DEPLOY.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/lab"
	"github.com/go-backpressure/go-backpressure/internal/netlab"
)

// linkFlag is the repeatable -link flag; a malformed link is refused as
// the flag is parsed (exit status 2), before anything starts.
type linkFlag []string

func (l *linkFlag) String() string { return strings.Join(*l, " ") }
func (l *linkFlag) Set(v string) error {
	if _, err := netlab.ParseLink(v, netlab.Link{}); err != nil {
		return err
	}
	*l = append(*l, v)
	return nil
}

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("lab-observe", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "directory with bp-server, bp-client and bp-relay")
	deploy := fs.String("deploy", "deploy", "the deploy/ directory")
	addr := fs.String("prometheus-addr", "127.0.0.1:9090", "Prometheus's web listener")
	dir := fs.String("dir", "", "directory for logs, rendered configs and Prometheus's data (default: a new temporary one, removed at the end)")
	hosts := fs.Bool("hosts", false, "run client, relay, HAProxy and server on hosts of their own (network namespaces, root): client -> 1 Gbit/s, 20 ms -> relay -> 10 Gbit/s, 0.5 ms -> haproxy -> 10 Gbit/s, 0.5 ms -> server")
	var links linkFlag
	fs.Var(&links, "link", "with -hosts, a link: a-b=RATE,RTT[,LOSS%][,mtu=N] (client-relay, relay-haproxy, haproxy-server; repeatable; docs/LAB.md)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if len(links) > 0 && !*hosts {
		fmt.Fprintln(os.Stderr, "lab-observe: -link shapes the links between hosts: it needs -hosts (on loopback there are no links)")
		return 2
	}
	if err := lab.CheckObserveLinks(links); err != nil {
		fmt.Fprintln(os.Stderr, "lab-observe:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	keep := *dir != ""
	where := "on loopback"
	if *hosts {
		where = "on hosts of their own, Prometheus on loopback"
	}
	fmt.Printf("starting bp-server, HAProxy, bp-relay, bp-client (--loop) and Prometheus %s...\n", where)
	ob, err := lab.Observe(ctx, lab.ObserveOptions{Bin: *bin, Deploy: *deploy, PrometheusAddr: *addr, Dir: *dir, Progress: os.Stdout,
		Hosts: *hosts, Links: links})
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab-observe:", err)
		if errors.Is(err, lab.ErrMissing) {
			return 3
		}
		return 1
	}
	defer func() {
		ob.Stop()
		if !keep {
			os.RemoveAll(ob.Dir)
		}
	}()

	query := func(expr string) string {
		return ob.PrometheusURL + "/graph?g0.range_input=5m&g0.tab=0&g0.expr=" + url.QueryEscape(expr)
	}
	fmt.Printf(`
Prometheus is up: %s   (targets: %s/targets)
Every hop is scraped with its target label hop=client|relay|haproxy|server.

Try (the dashboard's own queries, deploy/grafana/dashboards/go-backpressure.json):
  writes blocked per hop:  %s
  bytes/s into each hop:   %s
  server reading paused:   %s

Metrics of each hop: client %s, relay %s, haproxy %s (its sockets: bp-sockets %s), server %s
Logs and rendered configs: %s
bp-client's report of every run: printed here as each run ends, and in %s

The server stops reading 10 s into every connection, for 10 s; the client
runs 30 s at a time, 5 s apart. Stop everything with Ctrl-C (or: kill %d).
`, ob.PrometheusURL, ob.PrometheusURL,
		query(`sum by (hop) (rate(bp_writes_blocked_seconds_total[20s]))`),
		query(`sum by (hop) (rate(bp_bytes_read_total[20s]))`),
		query(`sum(bp_reads_paused{hop="server"})`),
		ob.Reachable["client"], ob.Reachable["relay"], ob.Reachable["haproxy"], ob.Reachable["haproxy/sockets"], ob.Reachable["server"], ob.Dir, ob.Reports, os.Getpid())
	if *hosts {
		// The forwarders above are what Prometheus scrapes; each hop's own
		// address is inside its namespace.
		fmt.Printf("(forwarded from each host: client %s, relay %s, haproxy %s, bp-sockets %s, server %s; reach them with ip netns exec)\n",
			ob.Targets["client"], ob.Targets["relay"], ob.Targets["haproxy"], ob.Targets["haproxy/sockets"], ob.Targets["server"])
	}

	for _, h := range ob.Hosts {
		fmt.Printf("host %s: ip netns exec %s ... (ss -tin, nstat, tshark -i %s)\n", h.Name, h.Namespace, h.Interfaces[0].Name)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Println("\nstopping every process the lab started...")
			return 0
		case <-tick.C:
			if name := ob.Exited(); name != "" {
				fmt.Fprintf(os.Stderr, "lab-observe: %s exited; its log: %s\n", name, ob.Log(name))
				return 1
			}
		}
	}
}
