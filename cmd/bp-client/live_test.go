package main

import (
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// TestDrainNote: the live line says the run waits for the path to drain
// only once --duration is up, with what is left of --drain-timeout.
func TestDrainNote(t *testing.T) {
	cfg := clientConfig{Duration: 10 * time.Second, DrainTimeout: 30 * time.Second, Direction: string(flow.Up)}
	for _, tc := range []struct {
		name    string
		cfg     clientConfig
		elapsed time.Duration
		want    string
	}{
		// Still writing: nothing to say.
		{"running", cfg, 5 * time.Second, ""},
		// Time up, a write still blocked: waiting, 25 s left.
		{"draining", cfg, 15 * time.Second, "time up, waiting for the path to drain (25s left)  "},
		// Past the drain timeout the run is ending: nothing is left.
		{"over", cfg, 45 * time.Second, "time up, waiting for the path to drain (0s left)  "},
		// A count-bounded run has no end time.
		{"count", clientConfig{DrainTimeout: time.Second, Direction: string(flow.Up)}, time.Hour, ""},
		// A download: the client does not write, nothing drains from it.
		{"download", clientConfig{Duration: time.Second, DrainTimeout: time.Second, Direction: string(flow.Down)}, time.Minute, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := drainNote(tc.cfg, tc.elapsed); got != tc.want {
				t.Errorf("drainNote = %q, want %q", got, tc.want)
			}
		})
	}
}
