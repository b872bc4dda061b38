package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

// TestFleetSettings: the instance index from the flag or a scheduler's
// variable, and the bad settings refused, naming the setting.
func TestFleetSettings(t *testing.T) {
	now := time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		f         FleetSettings
		env       map[string]string
		conns     int
		runLength time.Duration
		instance  int    // want, when wantErr is empty
		wantErr   string // the setting named in the error
	}{
		// A lone client: instance 0 of 1.
		{name: "alone", f: FleetSettings{Instance: -1, Instances: 1}, conns: 1, instance: 0},
		// A Kubernetes Indexed Job gives the index.
		{name: "indexed job", f: FleetSettings{Instance: -1, Instances: 4}, env: map[string]string{"JOB_COMPLETION_INDEX": "3"}, conns: 8, instance: 3},
		// Cloud Foundry gives the index.
		{name: "cloud foundry", f: FleetSettings{Instance: -1, Instances: 4}, env: map[string]string{"CF_INSTANCE_INDEX": "2"}, conns: 8, instance: 2},
		// Nomad gives the index.
		{name: "nomad", f: FleetSettings{Instance: -1, Instances: 4}, env: map[string]string{"NOMAD_ALLOC_INDEX": "1"}, conns: 8, instance: 1},
		// The flag beats the scheduler.
		{name: "flag wins", f: FleetSettings{Instance: 0, Instances: 4}, env: map[string]string{"JOB_COMPLETION_INDEX": "3"}, conns: 8, instance: 0},
		// An index with no --instances: outside 0..0.
		{name: "index without instances", f: FleetSettings{Instance: -1, Instances: 1}, env: map[string]string{"JOB_COMPLETION_INDEX": "3"}, conns: 8, wantErr: "--instance"},
		// An index beyond the fleet.
		{name: "index too big", f: FleetSettings{Instance: 4, Instances: 4}, conns: 8, wantErr: "--instance"},
		// A negative index other than the -1 of "from the scheduler".
		{name: "negative index", f: FleetSettings{Instance: -2, Instances: 4}, conns: 8, wantErr: "--instance"},
		// A scheduler's variable that is not a number.
		{name: "bad scheduler index", f: FleetSettings{Instance: -1, Instances: 4}, env: map[string]string{"JOB_COMPLETION_INDEX": "x"}, conns: 8, wantErr: "JOB_COMPLETION_INDEX"},
		// No instances.
		{name: "zero instances", f: FleetSettings{Instance: 0, Instances: 0}, conns: 8, wantErr: "--instances"},
		// Fewer connections than instances: some would make none.
		{name: "too few connections", f: FleetSettings{Instance: 0, Instances: 4}, conns: 3, wantErr: "--connections"},
		// A start a little in the past: the instance starts at once.
		{name: "late start", f: FleetSettings{Instance: 0, Instances: 2, StartAt: "2026-12-01T22:59:55Z"}, conns: 2, runLength: 10 * time.Second, instance: 0},
		// A start in the past by more than the run.
		{name: "start long past", f: FleetSettings{Instance: 0, Instances: 2, StartAt: "2026-12-01T22:00:00Z"}, conns: 2, runLength: 10 * time.Second, wantErr: "--start-at"},
		// A start that is no time.
		{name: "start not a time", f: FleetSettings{Instance: 0, Instances: 2, StartAt: "tomorrow"}, conns: 2, wantErr: "--start-at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			err := f.resolve(func(k string) string { return tt.env[k] })
			if err == nil {
				err = f.validate(tt.conns, tt.runLength, now)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
			case tt.wantErr == "" && f.Instance != tt.instance:
				t.Fatalf("instance %d, want %d", f.Instance, tt.instance)
			}
			var ce *config.Error
			if tt.wantErr != "" && strings.HasPrefix(tt.wantErr, "--") && !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *config.Error (exit status 2)", err)
			}
		})
	}
}

// TestShare: the instances' shares add up to the fleet's total, and differ
// by at most one.
func TestShare(t *testing.T) {
	tests := []struct {
		total, instances int
		want             []int
	}{
		{total: 8, instances: 4, want: []int{2, 2, 2, 2}},    // even split
		{total: 10, instances: 4, want: []int{3, 3, 2, 2}},   // the first total%instances take one more
		{total: 5, instances: 5, want: []int{1, 1, 1, 1, 1}}, // one each
		{total: 7, instances: 1, want: []int{7}},             // a lone client takes all
		{total: 101, instances: 3, want: []int{34, 34, 33}},  // large remainder
	}
	for _, tt := range tests {
		var got []int
		for i := range tt.instances {
			got = append(got, FleetSettings{Instance: i, Instances: tt.instances}.share(tt.total))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("share of %d over %d: %v, want %v", tt.total, tt.instances, got, tt.want)
		}
	}
}

// TestParseStartAt: both forms, and what is refused.
func TestParseStartAt(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time // zero: refused
	}{
		{"2026-12-01T23:00:00Z", time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)},          // RFC 3339
		{"2026-12-02T00:00:00.5+01:00", time.Date(2026, 12, 1, 23, 0, 0, 5e8, time.UTC)}, // with a fraction and a zone
		{"1796166000", time.Unix(1796166000, 0)},                                         // Unix seconds
		{"1796166000.25", time.Unix(1796166000, 25e7)},                                   // as date +%s.%N prints
		{"", time.Time{}},      // empty
		{"1e9", time.Time{}},   // exponent: not a Unix time as people write it
		{"-5", time.Time{}},    // before 1970
		{"23:00", time.Time{}}, // a time without a date
	}
	for _, tt := range tests {
		got, err := parseStartAt(tt.in)
		switch {
		case tt.want.IsZero() && err == nil:
			t.Errorf("%q: accepted as %v", tt.in, got)
		case !tt.want.IsZero() && (err != nil || !got.Equal(tt.want)):
			t.Errorf("%q: %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// TestVerdictMetricsInterval: the live verdict is judged every second up
// to 2,000 connections, and less often beyond, in proportion.
func TestVerdictMetricsInterval(t *testing.T) {
	for runs, want := range map[int]time.Duration{1: time.Second, 2000: time.Second, 19000: 9500 * time.Millisecond, 100000: 50 * time.Second} {
		if got := verdictMetricsInterval(runs); got != want {
			t.Errorf("verdictMetricsInterval(%d) = %s, want %s", runs, got, want)
		}
	}
}
