package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
)

// TestSmoke runs make bench-smoke's short round, so CI keeps the bench
// working without paying for the real one. It checks that every case ran
// and produced a throughput, not the targets: a one-second round on a
// shared machine says nothing about them. In CI (CI=true) a missing tool
// fails the test; elsewhere the test skips and says how to install it.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers, hops and about 10 s of traffic")
	}
	ci := os.Getenv("CI") == "true"
	var absent []string
	for _, tool := range []string{"iperf3", "haproxy", "socat"} {
		if _, err := exec.LookPath(tool); err != nil {
			absent = append(absent, tool)
		}
	}
	if len(absent) > 0 {
		msg := "missing " + strings.Join(absent, ", ") + ": run scripts/install-test-deps (as root)"
		if ci {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := flowtest.BuildCommands(t, root, "./cmd/bp-server", "./cmd/bp-client", "./cmd/bp-relay")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log strings.Builder
	res, err := run(ctx, options{
		Rounds: 1, Duration: time.Second, Bin: bin, Deploy: filepath.Join(root, "deploy"),
		PayloadSize: "128KiB", RequireAll: true, Amplify: 10,
	}, &log)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, log.String())
	}
	var table strings.Builder
	res.WriteTable(&table)
	t.Log(table.String())
	for _, name := range []string{caseIperf, caseTCP, caseTCPOff, amplifiedName(10), caseWS, caseGRPC, caseRelay, caseHAProxy, caseSocat} {
		if res.Rate(name) <= 0 {
			t.Errorf("%s: no throughput measured", name)
		}
		if res.CPU(name) <= 0 {
			t.Errorf("%s: no CPU per GB measured", name)
		}
	}
	for _, q := range ratios {
		if !strings.Contains(table.String(), q.name) {
			t.Errorf("table lacks the ratio %q", q.name)
		}
	}
	// The instrumentation's own cost ran once and measured both sides:
	// every process uses some CPU a second, and less than the machine's
	// two cores.
	if res.Cost == nil || len(res.Cost.rounds) != 1 {
		t.Fatalf("the instrumentation's cost did not run once: %+v", res.Cost)
	}
	r := res.Cost.rounds[0]
	for _, v := range []float64{r.on.client, r.on.server, r.off.client, r.off.server} {
		if v <= 0 || v > 2 {
			t.Errorf("instrumentation cost %+v: a CPU a second out of (0, 2]", r)
		}
	}
	for _, want := range []string{"share of bp tcp's CPU at full speed: ", "full-speed check, the instrumentation x10 against off, per 1x: "} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

// TestTableSkipped: skipped cases are listed after the table by
// reason, and the reason does not widen the table's columns (a run with
// -only once printed every MB/s 30 columns wide).
func TestTableSkipped(t *testing.T) {
	res := &Result{
		Options: options{Rounds: 1, Duration: time.Second, PayloadSize: "128KiB"},
		Cases: []*benchCase{
			{name: caseIperf, skipped: "not selected (-only)"},
			{name: caseTCP, rates: []float64{1.5e9}, cpu: []float64{0.7}},
			{name: caseWS, skipped: "not selected (-only)"},
		},
	}
	var b strings.Builder
	res.WriteTable(&b)
	out := b.String()
	if !strings.Contains(out, "case    MB/s  min   max   CPU s/GB") {
		t.Errorf("the header's columns are not at their width:\n%s", out)
	}
	if !strings.Contains(out, "bp tcp  1500  1500  1500  0.700") {
		t.Errorf("the measured row is not at the columns' width:\n%s", out)
	}
	if !strings.Contains(out, "skipped, not selected (-only): iperf3; bp websocket\n") {
		t.Errorf("the skipped cases and their reason are not listed:\n%s", out)
	}
}

// TestRoundOrder: odd rounds run the cases as listed, even ones reversed,
// so each case follows each of its neighbours in half the rounds; the list
// itself is left as it is (the table keeps its order).
func TestRoundOrder(t *testing.T) {
	a, b, c := &benchCase{name: "a"}, &benchCase{name: "b"}, &benchCase{name: "c"}
	cases := []*benchCase{a, b, c}
	names := func(cs []*benchCase) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.name)
		}
		return strings.Join(s, ",")
	}
	for round, want := range map[int]string{1: "a,b,c", 2: "c,b,a", 3: "a,b,c", 4: "c,b,a"} {
		if got := names(roundOrder(cases, round)); got != want {
			t.Errorf("round %d runs %s, want %s", round, got, want)
		}
	}
	if got := names(cases); got != "a,b,c" {
		t.Errorf("the cases' list became %s, want it unchanged", got)
	}
}
