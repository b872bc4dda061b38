// Command soak is the long-run leak check (make soak): bp-server and
// bp-relay under N minutes of mixed good and hostile peers, their file
// descriptors, goroutines and memory sampled every few seconds, then a
// table and a verdict.
//
//	go run ./scripts/soak                    # 10 minutes (make soak)
//	go run ./scripts/soak -duration 2m -v
//	go run ./scripts/soak -smoke             # 12 s, to check the soak works
//
// Good peers are real bp-client runs, over TCP and WebSocket, straight to
// the server and through the relay; each must complete with every byte
// it wrote acknowledged by the server (the server's own count). Hostile
// peers send garbage on the TCP port, bad hellos, dribble request headers,
// hold idle keep-alives, send frames over the limit, connect and vanish,
// and ask for downloads they never read. It passes when every good run
// conserved its bytes, neither process exited, and once the peers are
// gone the fds and goroutines are back near where they started and RSS
// stayed flat (docs/SAFETY.md, "Soak").
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
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.DurationVar(&o.Duration, "duration", 10*time.Minute, "how long the peers run")
	fs.DurationVar(&o.Interval, "interval", 5*time.Second, "how often to sample fds, goroutines and RSS")
	smoke := fs.Bool("smoke", false, "a short run to check the soak works: 12s, sampled every second")
	fs.StringVar(&o.Bin, "bin", "", "directory with bp-server, bp-client, bp-relay (default: build them into a temporary directory)")
	fs.BoolVar(&o.Verbose, "v", false, "print every sample and every failed run")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *smoke {
		o.Duration, o.Interval = 12*time.Second, time.Second
	}
	if o.Duration < 5*time.Second || o.Interval < 100*time.Millisecond {
		fmt.Fprintln(os.Stderr, "soak: -duration must be at least 5s and -interval at least 100ms")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o, os.Stderr)
	if res != nil {
		res.WriteTable(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	if !res.Pass() {
		os.Exit(1)
	}
}
