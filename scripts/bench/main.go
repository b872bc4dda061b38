// Command bench is the whole-system throughput comparison on loopback
// (make bench): iperf3, bp-client to bp-server over TCP and over WebSocket,
// with instrumentation on and off, and through one hop (bp-relay in stream
// mode, HAProxy, socat), each case in turn in every round, then a table of
// the medians (throughput and CPU seconds per GB: user + system time of
// the client and of every process the stream passes) and of the ratios the
// performance targets are about. Every round also measures the
// instrumentation's own CPU on a slow stream, on against off, and sets it
// against the full-speed tcp case's CPU (instcost.go): the full-speed
// on/off ratio alone drowns a cost under 1% in the rounds' spread.
//
//	go run ./scripts/bench                  # 7 rounds of 5 s per case (make bench)
//	go run ./scripts/bench -load            # the same beside a busy loop on one CPU
//	go run ./scripts/bench -smoke           # 1 round of 1 s per case (make bench-smoke)
//	go run ./scripts/bench -rounds 9 -duration 10s -v
//
// Ratios are taken within each round (both numbers measured minutes apart
// at most, under the same load) and the table shows their median, so a
// shared, noisy machine moves both sides of a ratio alike. See
// docs/BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&o.Rounds, "rounds", 7, "rounds; every case runs once per round")
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "how long each case sends")
	smoke := fs.Bool("smoke", false, "a very short run to check the bench works: 1 round of 1s per case")
	fs.StringVar(&o.Bin, "bin", "", "directory with bp-server, bp-client, bp-relay (default: build them into a temporary directory)")
	fs.StringVar(&o.Deploy, "deploy", "deploy", "directory with the haproxy/ configs")
	fs.StringVar(&o.PayloadSize, "payload-size", "128KiB", "bp-client --payload-size (128KiB: its default, and iperf3's default block size)")
	fs.StringVar(&o.Only, "only", "", "run only the cases whose name contains one of these comma-separated words (e.g. iperf3,tcp)")
	fs.BoolVar(&o.Verbose, "v", false, "print every command and every round's numbers")
	fs.BoolVar(&o.Load, "load", false, "the loaded variant: a CPU-bound busy loop runs in the background throughout")
	fs.BoolVar(&o.LoadPin, "load-pin", true, "with -load, pin the busy loop to the last CPU (taskset)")
	fs.StringVar(&o.Compare, "compare", "", "a second directory of bp binaries: its tcp, websocket and relay cases run beside the first's in every round, named [B]")
	fs.IntVar(&o.Amplify, "amplify", 0, "also run bp tcp with its instrumentation this many times as often (sampling every 100ms/N, N scrapes a second), to check at full speed the instrumentation's cost the slow stream measures (0: off)")
	fs.BoolVar(&o.RequireAll, "require-all", false, "fail instead of skipping a case whose tool (iperf3, haproxy, socat) is missing")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *smoke {
		o.Rounds, o.Duration = 1, time.Second
	}
	if o.Rounds < 1 || o.Duration < 500*time.Millisecond {
		fmt.Fprintln(os.Stderr, "bench: -rounds must be at least 1 and -duration at least 500ms")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o, os.Stderr)
	if res != nil {
		res.WriteTable(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
