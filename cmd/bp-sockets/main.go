// Command bp-sockets exports the kernel's view of a hop's TCP sockets, of
// any hop (HAProxy, nginx, Envoy, bp-relay): it reads every TCP socket of
// its network namespace through sock_diag, keeps the hop's by port
// (--downstream-ports, --upstream-ports), and serves the bp_socket_*
// metrics with a label side. Run it beside the hop, in the hop's network
// namespace. See docs/METRICS.md and docs/DEPLOY.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

func main() {
	cfg, err := loadConfig(os.Args[1:])
	if err != nil {
		os.Exit(config.Fail("bp-sockets", err))
	}
	if cfg.Version {
		fmt.Println("bp-sockets", config.Version)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := cfg.Logger(os.Stderr)
	if err := run(ctx, cfg, log, nil); err != nil {
		log.Error("bp-sockets failed", "err", err)
		os.Exit(config.ExitFailed)
	}
}
