package relay_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/relay"
)

// TestRelayBudgetIdleConnections (issue 13, defect 2): idle connections
// hold none of the shared budget. With room for two connections' reads in
// the old accounting (each direction reserved a read's worth before every
// read and held it while the read waited), ten idle connections used to
// make every further connection hang; now a run through the same relay
// completes and the budget is back at zero afterwards.
func TestRelayBudgetIdleConnections(t *testing.T) {
	for _, tc := range []struct {
		name   string
		proto  flow.Protocol
		buffer int
	}{
		{"stream/tcp", flow.TCP, 0}, // passthrough
		{"stream/websocket", flow.WebSocket, 0},
		{"buffered/tcp", flow.TCP, 256 << 10}, // a writer per pipe
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			addr, results := flowtest.StartTCPServer(t, flow.ReadSettings{}, flow.SocketOptions{})
			budget := relay.NewBudget(256 << 10)
			rl := startRelay(t, relay.Config{Name: "r", Buffer: tc.buffer, Budget: budget}, "tcp://"+addr, flow.SocketOptions{})
			for i := range 10 {
				idle, err := dialTarget(ctx, rl.target(tc.proto), flow.Hello{RunID: fmt.Sprint("idle", i), PayloadSize: 1 << 10}, flow.SocketOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer idle.Close()
			}
			time.Sleep(200 * time.Millisecond) // every idle connection's readers are in their read
			const total = 4 << 20
			c, err := dialTarget(ctx, rl.target(tc.proto), flow.Hello{RunID: "busy", PayloadSize: 64 << 10, TotalBytes: total}, flow.SocketOptions{})
			if err != nil {
				t.Fatal(err)
			}
			snap, err := flow.NewSession(c, flowtest.ClientPlan(flow.Up, total), nil).Run(ctx)
			if err != nil || snap.Acked != total {
				t.Fatalf("a run beside 10 idle connections: acked %d of %d, err %v (budget used %d of %d)", snap.Acked, total, err, budget.Used(), budget.Max())
			}
			for res := range results {
				if res.Hello != nil && res.Hello.RunID == "busy" {
					if res.Err != nil || res.Snap.Read != total {
						t.Errorf("server: read %d, err %v", res.Snap.Read, res.Err)
					}
					break
				}
			}
			if used := budget.Used(); used != 0 {
				t.Errorf("budget used %d with only idle connections open, want 0", used)
			}
		})
	}
}

// TestRelayBudgetWaitVisible (issue 13, defect 2): a connection that cannot
// get room in a full budget waits, counted (BudgetWaiting), and goes on as
// soon as room is given back. Connection A fills the budget towards a
// server that never reads; connection B, through a second relay sharing
// the budget, towards a server that reads, waits while A holds it all and
// completes once A is gone.
func TestRelayBudgetWaitVisible(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	small := flow.SocketOptions{SendBuffer: 32 << 10, ReceiveBuffer: 32 << 10}
	stalled, stalledConns := stalledUpstream(t, small)
	healthy, results := flowtest.StartTCPServer(t, flow.ReadSettings{}, flow.SocketOptions{})
	budget := relay.NewBudget(256 << 10)
	cfg := relay.Config{Name: "r", Buffer: 1 << 20, Budget: budget}
	relayA := startRelay(t, cfg, "tcp://"+stalled, small)
	relayB := startRelay(t, cfg, "tcp://"+healthy, flow.SocketOptions{})

	actx, acancel := context.WithCancel(ctx)
	a, err := dialTarget(actx, relayA.target(flow.TCP), flow.Hello{RunID: "a", PayloadSize: 64 << 10}, small)
	if err != nil {
		t.Fatal(err)
	}
	aDone := make(chan struct{})
	go func() { defer close(aDone); flow.NewSession(a, flowtest.ClientPlan(flow.Up, 0), nil).Run(actx) }()
	// A waits once its next read does not fit: the budget is then full to
	// within one read (a waiter is granted its whole read or nothing, so
	// Used reaches Max only when the reads happen to fill it exactly).
	waitFor(t, "connection A to fill the budget and wait", func() bool {
		_, now := relayA.buffers.budget()
		return now == 1 && budget.Waiting() == 1 && budget.Used() > budget.Max()/2
	})

	const total = 1 << 20
	b, err := dialTarget(ctx, relayB.target(flow.TCP), flow.Hello{RunID: "b", PayloadSize: 64 << 10, TotalBytes: total}, flow.SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bDone := make(chan error, 1)
	go func() {
		snap, err := flow.NewSession(b, flowtest.ClientPlan(flow.Up, total), nil).Run(ctx)
		if err == nil && snap.Acked != total {
			err = fmt.Errorf("acked %d of %d", snap.Acked, total)
		}
		bDone <- err
	}()
	waitFor(t, "connection B to wait for the budget", func() bool {
		waits, now := relayB.buffers.budget()
		return waits >= 1 && now == 1
	})
	select {
	case err := <-bDone:
		t.Fatalf("B finished while A held the budget and waited for more: %v", err)
	case <-time.After(200 * time.Millisecond):
	}

	// A ends, here by its upstream resetting the connection: the relay
	// drops what A held. (A reader waiting for room reads nothing, so it
	// would not see its client go away; an upstream failure ends it.)
	up := <-stalledConns
	up.(*net.TCPConn).SetLinger(0)
	up.Close()
	acancel()
	<-aDone
	if err := <-bDone; err != nil {
		t.Fatalf("B after A ended: %v", err)
	}
	if res := <-results; res.Err != nil || res.Snap.Read != total {
		t.Errorf("server: read %d, err %v", res.Snap.Read, res.Err)
	}
	waitFor(t, "the budget to empty", func() bool { return budget.Used() == 0 && budget.Waiting() == 0 })
	if _, now := relayB.buffers.budget(); now != 0 {
		t.Errorf("readers still counted as waiting: %d", now)
	}
}

// stalledUpstream accepts framed TCP connections and never reads them; it
// sends each accepted socket on the channel, so the test can end it.
func stalledUpstream(t *testing.T, opts flow.SocketOptions) (string, <-chan net.Conn) {
	t.Helper()
	ln, err := flow.ListenTCP(context.Background(), "127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 4)
	var accepted []net.Conn
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range accepted {
			c.Close()
		}
	})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted = append(accepted, nc)
			conns <- nc
		}
	}()
	return ln.Addr().String(), conns
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
