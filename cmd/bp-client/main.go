package main

import (
	"context"
	"os"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

func main() {
	config.Main("bp-client", loadConfig, func(ctx context.Context, cfg clientConfig) int {
		return run(ctx, cfg, os.Stdout, os.Stderr)
	})
}
