package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
	"github.com/go-backpressure/go-backpressure/pkg/report"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// FleetSettings place one bp-client in a fleet of them: which instance it
// is, how many there are, the fleet run's name and when they all start.
// Exported (and embedded) so that pkg/config's reflection can set its
// fields; kept in its own struct so that the fleet's lines stay together.
type FleetSettings struct {
	Instance  int    `envconfig:"INSTANCE" flag:"instance" default:"-1" desc:"this client's index in the fleet, 0..instances-1 (-1: from the scheduler's JOB_COMPLETION_INDEX (Kubernetes Indexed Job), CF_INSTANCE_INDEX (Cloud Foundry) or NOMAD_ALLOC_INDEX, else 0)"`
	Instances int    `envconfig:"INSTANCES" flag:"instances" default:"1" desc:"how many clients the fleet has; with more than 1, --connections is the fleet's total: instance i makes connections/instances, and one more when i < connections%instances"`
	Fleet     string `envconfig:"FLEET" flag:"fleet" default:"" desc:"the fleet run's name, in every instance's report and metrics (bp_fleet_info); bp-client merge refuses reports of different fleets"`
	StartAt   string `envconfig:"START_AT" flag:"start-at" default:"" desc:"when the fleet starts: an RFC 3339 time (2026-12-01T23:00:00Z) or a Unix time in seconds; every instance waits for it, one that starts late says so and starts at once (empty: now)"`

	// instanceFrom names where Instance came from, for messages: the flag
	// or the scheduler's variable.
	instanceFrom string
	// startAt is StartAt parsed (zero: start now).
	startAt time.Time
	// fleetConnections is --connections as given: the fleet's total, of
	// which this instance makes its share.
	fleetConnections int
}

// instanceDefault is where Instance came from when neither the flag nor a
// scheduler said.
const instanceDefault = "the default, 0"

// schedulerIndexVars are the schedulers' variables that carry an instance's
// index, in the order they are looked at. Cloud Foundry and Nomad give no
// count of instances (CF's VCAP_APPLICATION has no instance_count), so
// --instances is always set by the deployment.
var schedulerIndexVars = []string{"JOB_COMPLETION_INDEX", "CF_INSTANCE_INDEX", "NOMAD_ALLOC_INDEX"}

// resolve fills what the flags left to the scheduler (the index) and
// parses --start-at. getenv is os.Getenv outside tests.
func (f *FleetSettings) resolve(getenv func(string) string) error {
	f.instanceFrom = "--instance (" + config.EnvName("instance") + ")"
	if f.Instance == -1 {
		f.Instance, f.instanceFrom = 0, instanceDefault
		for _, name := range schedulerIndexVars {
			v := getenv(name)
			if v == "" {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("invalid value %q for %s (the scheduler's instance index, used as --instance): not a whole number from 0", v, name)
			}
			f.Instance, f.instanceFrom = n, name
			break
		}
	}
	if f.StartAt != "" {
		t, err := parseStartAt(f.StartAt)
		if err != nil {
			return config.Invalid("start-at", f.StartAt, err.Error())
		}
		f.startAt = t
	}
	return nil
}

// parseStartAt reads an RFC 3339 time or a Unix time in seconds (with a
// fraction, as `date +%s.%N` prints it).
func parseStartAt(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || secs <= 0 || math.IsInf(secs, 0) || strings.ContainsAny(s, "eE") {
		return time.Time{}, fmt.Errorf("not an RFC 3339 time (2026-12-01T23:00:00Z) nor a Unix time in seconds")
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)), nil
}

// validate checks the fleet settings against the run: runLength is how
// long the run lasts when known (--duration; 0: bounded by --count), now
// the time to judge --start-at by.
func (f FleetSettings) validate(connections int, runLength time.Duration, now time.Time) error {
	switch {
	case f.Instances < 1 || f.Instances > 100000:
		return config.Invalid("instances", f.Instances, "must be between 1 and 100000")
	case f.Instance < 0 || f.Instance >= f.Instances:
		reason := fmt.Sprintf("instance %d (from %s) is outside 0..%d", f.Instance, f.instanceFrom, f.Instances-1)
		if f.Instances == 1 {
			reason += ": set --instances (BP_INSTANCES) to the fleet's size"
		}
		return config.Invalid("instance", f.Instance, reason)
	case connections < f.Instances:
		return config.Invalid("connections", connections, fmt.Sprintf("is the fleet's total and must be at least --instances %d (one connection per instance)", f.Instances))
	case len(f.Fleet) > 64:
		return config.Invalid("fleet", f.Fleet, "must be at most 64 bytes")
	case !f.startAt.IsZero() && runLength > 0 && now.Sub(f.startAt) > runLength:
		return config.Invalid("start-at", f.StartAt, fmt.Sprintf("is %s in the past, more than the run (--duration %s): the fleet has finished", now.Sub(f.startAt).Round(time.Second), runLength))
	}
	return nil
}

// share is this instance's part of the fleet's total connections: the
// total split as evenly as whole numbers allow, the first total%instances
// instances taking one more, so the shares add up to the total exactly.
func (f FleetSettings) share(total int) int {
	n := total / f.Instances
	if f.Instance < total%f.Instances {
		n++
	}
	return n
}

// waitStart waits for --start-at, so the fleet starts together, and
// reports whether ctx ended first. An instance past the time says how late
// it is and starts at once.
func (f FleetSettings) waitStart(ctx context.Context, log *slog.Logger) (interrupted bool) {
	if f.startAt.IsZero() {
		return false
	}
	wait := time.Until(f.startAt)
	if wait <= 0 {
		log.Warn("starting late: --start-at has passed, starting at once", "start_at", f.startAt.Format(time.RFC3339Nano), "late", (-wait).String())
		return false
	}
	log.Info("waiting for the fleet's start", "start_at", f.startAt.Format(time.RFC3339Nano), "wait", wait.Round(time.Millisecond).String())
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return false
	case <-ctx.Done():
		return true
	}
}

// inFleet reports whether this client runs as part of a fleet.
func (f FleetSettings) inFleet() bool { return f.Instances > 1 || f.Fleet != "" }

// fleetEnv is os.Getenv, a variable so tests can give a scheduler's
// environment.
var fleetEnv = os.Getenv

// fleetReport is the report's fleet object, nil when not in a fleet.
func (f FleetSettings) fleetReport() *report.Fleet {
	if !f.inFleet() {
		return nil
	}
	return &report.Fleet{Name: f.Fleet, Instance: f.Instance, Instances: f.Instances, Connections: f.fleetConnections}
}

// verdictFigures is what the metrics export of a report's verdict (nil: a
// client that only reads, whose verdict is unknown).
func verdictFigures(v *verdict.Verdict) metrics.VerdictFigures {
	if v == nil {
		return metrics.VerdictFigures{Outcome: verdict.OutcomeUnknown}
	}
	return metrics.VerdictFigures{Outcome: v.Outcome, AbsorbedBytes: v.AbsorbedBytes,
		BlockDelay: v.BlockDelaySeconds, ServerStoppedAt: v.ServerStoppedAtSeconds}
}

// verdictMetricsEvery is how often the verdict's gauges follow a running
// round of up to 2,000 connections (or streams).
const verdictMetricsEvery = time.Second

// verdictMetricsInterval is how often they follow a round of runs
// connections (or streams): every second, and beyond 2,000 runs every
// runs/2000 seconds. A judgment walks every connection's timeline, and at
// 19,000 slow connections each one made 14 MB of garbage: once a second,
// that was 18 MB/s, and it grew the client's heap to twice its live size
// between collections (30 KiB of RSS per connection instead of 21).
func verdictMetricsInterval(runs int) time.Duration {
	return max(verdictMetricsEvery, time.Duration(runs)*verdictMetricsEvery/2000)
}

// startVerdictMetrics keeps the verdict's gauges up to date while a round
// runs, until the returned function stops it, so that a fleet's dashboard
// shows instances blocking as they block rather than once their reports
// are printed (the report then sets the final values). Nothing runs when
// no metrics are served or the round has no verdict (a client that only
// reads).
func (c *client) startVerdictMetrics(judge flow.Observer) (stop func()) {
	v, ok := judge.(*verdict.Observer)
	if !ok || c.cfg.MetricsAddr == "" {
		return func() {}
	}
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		runs := c.cfg.Connections
		if c.cfg.multiplexed() {
			runs *= c.cfg.Streams
		}
		t := time.NewTicker(verdictMetricsInterval(runs))
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				judged := v.Verdict(now)
				c.verdictMetrics.Set(verdictFigures(&judged))
			}
		}
	}()
	return func() { close(quit); <-done }
}

// warnUnplaced warns when a fleet's instance was told neither its index
// nor found one from a scheduler: it runs as instance 0, and so, most
// likely, do its siblings (merge then refuses the second instance 0).
func (f FleetSettings) warnUnplaced(log *slog.Logger) {
	if f.Instances > 1 && f.instanceFrom == instanceDefault {
		log.Warn("no instance index: running as instance 0 (set --instance, or run under a scheduler that sets JOB_COMPLETION_INDEX, CF_INSTANCE_INDEX or NOMAD_ALLOC_INDEX)", "instances", f.Instances)
	}
}
