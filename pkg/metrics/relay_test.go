package metrics_test

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
	"github.com/go-backpressure/go-backpressure/pkg/relay"
)

// TestRelayMetricsValues drives the relay observer as a relay does and
// reads the values back.
func TestRelayMetricsValues(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := metrics.NewRelay(reg, 8<<20, 1<<30)
	var obs relay.Observer = r

	obs.Capacity(flow.Up, 8<<20)
	obs.Capacity(flow.Down, 8<<20)
	obs.Buffered(flow.Up, 3<<20)
	obs.ReadingPaused(flow.Up, true, 0)
	if got := testutil.ToFloat64(r.ReadersPaused.WithLabelValues("up")); got != 1 {
		t.Errorf("reading paused during the pause = %v, want 1", got)
	}
	obs.ReadingPaused(flow.Up, false, 1500*time.Millisecond)
	obs.BudgetWaiting(flow.Down, true, 0)
	if got := testutil.ToFloat64(r.BudgetWaitingNow.WithLabelValues("down")); got != 1 {
		t.Errorf("budget waiting during the wait = %v, want 1", got)
	}
	obs.BudgetWaiting(flow.Down, false, 250*time.Millisecond)
	obs.Buffered(flow.Up, -1<<20)
	obs.Failed(relay.Upstream, errors.New("reset"))

	for _, c := range []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"buffered up", r.BufferedBytes.WithLabelValues("up"), 2 << 20},
		{"buffered down", r.BufferedBytes.WithLabelValues("down"), 0},
		{"capacity up", r.CapacityBytes.WithLabelValues("up"), 8 << 20},
		{"size", r.BufferSize, 8 << 20},
		{"max", r.BufferMax, 1 << 30},
		{"paused now", r.ReadersPaused.WithLabelValues("up"), 0},
		{"paused total", r.PausedTotal.WithLabelValues("up"), 1},
		{"resumed total", r.ResumedTotal.WithLabelValues("up"), 1},
		{"paused seconds", r.PausedSeconds.WithLabelValues("up"), 1.5},
		{"budget waiting", r.BudgetWaitingNow.WithLabelValues("down"), 0},
		{"budget waits", r.BudgetWaitsTotal.WithLabelValues("down"), 1},
		{"budget wait seconds", r.BudgetWaitSeconds.WithLabelValues("down"), 0.25},
		{"failures upstream", r.FailuresTotal.WithLabelValues("upstream"), 1},
		{"failures downstream", r.FailuresTotal.WithLabelValues("downstream"), 0},
	} {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestRelayMetricsDocumented keeps the "bp-relay" table of docs/METRICS.md
// and the relay registry in step: same names, types and labels.
func TestRelayMetricsDocumented(t *testing.T) {
	section := metricsDocSection(t, "bp-relay")
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| (counter|gauge|histogram) \\|([a-z_, ]*)\\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		documented[m[1]] = m[2] + " " + strings.TrimSpace(m[3])
	}

	reg := prometheus.NewRegistry()
	metrics.NewRelay(reg, 0, 1<<30)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]string{}
	for _, f := range fams {
		var labels []string
		if len(f.GetMetric()) > 0 {
			for _, l := range f.GetMetric()[0].GetLabel() {
				labels = append(labels, l.GetName())
			}
		}
		slices.Sort(labels)
		registered[f.GetName()] = strings.ToLower(f.GetType().String()) + " " + strings.Join(labels, ", ")
	}
	for name, want := range registered {
		if got, ok := documented[name]; !ok {
			t.Errorf("%s (%s) is registered but not in the bp-relay table of docs/METRICS.md", name, want)
		} else if got != want {
			t.Errorf("%s: documented as %q, registered as %q", name, got, want)
		}
	}
	for name := range documented {
		if _, ok := registered[name]; !ok {
			t.Errorf("%s is in the bp-relay table of docs/METRICS.md but not registered", name)
		}
	}
}
