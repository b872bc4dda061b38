package main

import (
	"context"
	"os"

	"github.com/go-backpressure/go-backpressure/internal/procs"
	"github.com/go-backpressure/go-backpressure/pkg/config"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "merge" {
		os.Exit(runMerge(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	config.Main("bp-client", loadConfig, func(ctx context.Context, cfg clientConfig) int {
		if err := checkFDs(cfg); err != nil {
			return config.Fail("bp-client", err)
		}
		procs.Fixed(cfg.busy()) // before the run's goroutines: see package procs
		return run(ctx, cfg, os.Stdout, os.Stderr)
	})
}
