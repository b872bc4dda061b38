package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
)

// TestSmoke runs the soak's -smoke length (12 s of peers), so the suite
// keeps make soak working without paying for its 10 minutes: every kind
// of peer ran, every good run conserved its bytes, and the checks pass
// (at this length the flatness checks say little; the full soak's
// figures are in docs/SAFETY.md).
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts bp-server and bp-relay and about 15 s of peers")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := flowtest.BuildCommands(t, root, "./cmd/bp-server", "./cmd/bp-client", "./cmd/bp-relay")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log strings.Builder
	res, err := run(ctx, options{Duration: 12 * time.Second, Interval: time.Second, Bin: bin}, &log)
	if err != nil {
		t.Fatalf("soak: %v\n%s", err, log.String())
	}
	var table strings.Builder
	res.WriteTable(&table)
	t.Log(table.String())
	if !res.Pass() {
		t.Error("the smoke soak failed its checks")
	}
	for _, kind := range []string{"garbage", "bad hello", "slow headers", "idle keep-alive", "huge frame", "connect and vanish", "never-read download"} {
		if c := res.hostile[kind]; c == nil || c.Load() == 0 {
			t.Errorf("no %s peer ran", kind)
		}
	}
	if len(res.good) < 3 {
		t.Errorf("good runs took %d of the paths, want at least 3: %v", len(res.good), res.good)
	}
}
