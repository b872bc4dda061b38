package main

import (
	"context"
	"os"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

func main() {
	config.Main("bp-relay", loadConfig, func(ctx context.Context, cfg relayConfig) int {
		log := cfg.Logger(os.Stderr)
		if err := run(ctx, cfg, log, nil); err != nil {
			log.Error("bp-relay failed", "err", err)
			return config.ExitFailed
		}
		return config.ExitOK
	})
}
