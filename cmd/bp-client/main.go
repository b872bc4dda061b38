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
		os.Exit(config.Fail("bp-client", err))
	}
	if cfg.Version {
		fmt.Println("bp-client", config.Version)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, cfg, os.Stdout, os.Stderr))
}
