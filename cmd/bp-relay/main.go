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
		os.Exit(config.Fail("bp-relay", err))
	}
	if cfg.Version {
		fmt.Println("bp-relay", config.Version)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := cfg.Logger(os.Stderr)
	if err := run(ctx, cfg, log, nil); err != nil {
		log.Error("bp-relay failed", "err", err)
		os.Exit(config.ExitFailed)
	}
}
