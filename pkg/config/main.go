package config

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// settings is every binary's settings struct: it embeds Common.
type settings interface{ common() Common }

func (c Common) common() Common { return c }

// Main is the whole of a thin main: it loads the settings (a bad one exits
// 2 with its message, --help exits 0), answers --version, then calls run
// with a context that SIGINT and SIGTERM cancel, and exits with run's
// status. One function for every binary, so they start and stop alike.
func Main[C settings](name string, load func(args []string) (C, error), run func(ctx context.Context, cfg C) int) {
	cfg, err := load(os.Args[1:])
	if err != nil {
		os.Exit(Fail(name, err))
	}
	if cfg.common().Version {
		fmt.Println(name, Version)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, cfg)
	stop()
	os.Exit(code)
}
