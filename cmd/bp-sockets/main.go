package main

import (
	"context"
	"os"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

func main() {
	config.Main("bp-sockets", loadConfig, func(ctx context.Context, cfg socketsConfig) int {
		log := cfg.Logger(os.Stderr)
		if err := run(ctx, cfg, log, nil); err != nil {
			log.Error("bp-sockets failed", "err", err)
			return config.ExitFailed
		}
		return config.ExitOK
	})
}
