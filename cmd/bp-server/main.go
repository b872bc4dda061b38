package main

import (
	"context"
	"os"

	"github.com/go-backpressure/go-backpressure/internal/procs"
	"github.com/go-backpressure/go-backpressure/pkg/config"
)

func main() {
	config.Main("bp-server", loadConfig, func(ctx context.Context, cfg serverConfig) int {
		log := cfg.Logger(os.Stderr)
		cfg.procs = procs.NewFitter() // before any goroutine of the server's: see package procs
		if err := run(ctx, cfg, log, nil); err != nil {
			log.Error("bp-server failed", "err", err)
			return config.ExitFailed
		}
		return config.ExitOK
	})
}
