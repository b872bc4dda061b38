// Command delayline is the lab's delay line helper: it runs one link's
// delay line (internal/netlab) on the two TUN devices it is given as file
// descriptors 3 and 4, until its stdin ends. netlab starts it for each
// link when Spec.LineBin names it; the e2e tests do, building it without
// the race detector they are built with, which slowed a line in their own
// process six-fold.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/go-backpressure/go-backpressure/internal/netlab"
)

func main() {
	oneWay := flag.Duration("one-way", 0, "how long the line holds each packet, each way")
	loss := flag.Float64("loss", 0, "the probability that a packet is dropped (0 to 1)")
	flag.Parse()
	if *oneWay < 0 || *loss < 0 || *loss > 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: delayline -one-way D [-loss P] 3<tun-a 4<tun-b <stop (started by internal/netlab)")
		os.Exit(2)
	}
	// Ctrl-C in the lab's terminal reaches the whole process group; the
	// lab decides when its links go (it may hold the hosts), so the helper
	// ends with its stdin only.
	signal.Ignore(os.Interrupt)
	if err := netlab.ServeLine(context.Background(), os.Stdin, *oneWay, *loss); err != nil {
		fmt.Fprintln(os.Stderr, "delayline:", err)
		os.Exit(1)
	}
}
