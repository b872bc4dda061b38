package metrics_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
)

// gatherValue returns the value of the first series of name with
// protocol="tcp" in reg.
func gatherValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	v, ok := series(t, reg, name, map[string]string{"protocol": "tcp"})
	if !ok {
		t.Fatalf("no %s{protocol=\"tcp\"}", name)
	}
	return v
}

// TestLiveBlockedWrites: while a write is blocked behind a paused reader,
// bp_writes_stalled and bp_writes_blocked_seconds_total show it, before the
// write returns and the histogram or bp_stalls_total learn of it.
func TestLiveBlockedWrites(t *testing.T) {
	const pause = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	small := flow.SocketOptions{SendBuffer: 64 << 10, ReceiveBuffer: 64 << 10}
	ln, err := flow.ListenTCP(ctx, "127.0.0.1:0", small)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		_, c, err := flow.AcceptTCP(nc, time.Second)
		if err != nil {
			served <- err
			return
		}
		plan := flow.Plan{PeerWrites: true, Read: flow.ReadSettings{Pause: flow.PauseSchedule{For: pause}}}
		_, err = flow.NewSession(c, plan, nil).Run(ctx)
		served <- err
	}()

	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test")
	m.SetStallThreshold(100 * time.Millisecond)
	const total = 8 << 20
	c, err := flow.DialTCP(ctx, ln.Addr().String(), flow.Hello{PayloadSize: 64 << 10, TotalBytes: total}, small)
	if err != nil {
		t.Fatal(err)
	}
	plan := flow.Plan{Initiator: true, Write: &flow.WritePlan{Payload: bytes.Repeat([]byte{'z'}, 64<<10), TotalBytes: total}}
	done := make(chan error, 1)
	go func() {
		_, err := flow.NewSession(c, plan, m).Run(ctx)
		done <- err
	}()

	// Wait until a write has been blocked past the threshold, mid-pause.
	deadline := time.Now().Add(pause)
	for gatherValue(t, reg, "bp_writes_stalled") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("bp_writes_stalled never reached 1 during the pause")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	during := gatherValue(t, reg, "bp_writes_blocked_seconds_total")
	if during < 0.5 {
		t.Errorf("bp_writes_blocked_seconds_total = %.3f mid-pause, want >= 0.5 (the blocked write so far)", during)
	}
	if got := testutil.ToFloat64(m.Stalls.WithLabelValues("tcp")); got != 0 {
		t.Errorf("bp_stalls_total = %v while the write is still blocked; this test needs the write in progress", got)
	}

	if err := <-done; err != nil {
		t.Fatalf("client: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("server: %v", err)
	}
	after := gatherValue(t, reg, "bp_writes_blocked_seconds_total")
	if after < during {
		t.Errorf("counter went down: %.3f mid-pause, %.3f after", during, after)
	}
	if got := gatherValue(t, reg, "bp_writes_stalled"); got != 0 {
		t.Errorf("bp_writes_stalled = %v after the run, want 0", got)
	}
	if stalls := testutil.ToFloat64(m.Stalls.WithLabelValues("tcp")); stalls < 1 {
		t.Errorf("bp_stalls_total = %v after the run, want >= 1", stalls)
	}
	// The finished writes' time agrees with the histogram's sum.
	var sum float64
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "bp_write_blocked_seconds" {
			for _, mm := range mf.GetMetric() {
				if mm.GetLabel()[0].GetValue() == "tcp" {
					sum = mm.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	if diff := after - sum; diff < -0.01 || diff > 0.05 {
		t.Errorf("bp_writes_blocked_seconds_total = %.3f, histogram sum %.3f: want them equal once no write is in progress", after, sum)
	}
}
