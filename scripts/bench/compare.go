package main

import (
	"context"
	"path/filepath"
)

// compareSuffix names the cases of -compare's second build.
const compareSuffix = " [B]"

// addCompare adds -compare's cases: a second bp-server (instrumented, as
// the default one) and bp-relay from o.Compare, and the tcp, websocket and
// relay cases run with that build's bp-client against them, with their
// ratios to the default build's cases and to the references. Each round
// runs both builds' cases in turn, so a change is judged under the load
// both saw.
func addCompare(ctx context.Context, o options, res *Result,
	start func(string, []string, ...string) (*proc, error),
	add func(name, tool string, on bool, target string) *benchCase) error {
	srv, err := startServer(ctx, start, o.Compare, "bp-server-b", "100ms")
	if err != nil {
		return err
	}
	client := func(name, target string, peers ...*proc) *benchCase {
		c := add(name+compareSuffix, "", true, target)
		c.cmd[0] = filepath.Join(o.Compare, "bp-client")
		c.peers, c.serverHTTP = peers, srv.http
		return c
	}
	client(caseTCP, "tcp://"+srv.tcp, srv.p)
	client(caseWS, "ws://"+srv.http+"/ws", srv.p)
	relayHTTP, relayTCP := freeAddr(), freeAddr()
	rp, err := start("bp-relay-b", nil, filepath.Join(o.Compare, "bp-relay"), "--http-addr", relayHTTP, "--tcp-addr", relayTCP,
		"--upstream", "tcp://"+srv.tcp, "--buffer", "0", "--sample-interval", "100ms", "--log-format", "text")
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, rp, "http://"+relayHTTP+"/healthz"); err != nil {
		return err
	}
	relay := client(caseRelay, "tcp://"+relayTCP, rp, srv.p)
	relay.cmd = append(relay.cmd, "--run-id", "relay")
	b := func(name string) string { return name + compareSuffix }
	res.Extra = []ratio{
		{"[B] / [A] bp tcp", b(caseTCP), caseTCP, false, 0},
		{"[B] / [A] bp websocket", b(caseWS), caseWS, false, 0},
		{"[B] / [A] bp-relay", b(caseRelay), caseRelay, false, 0},
		{"[B] bp tcp / iperf3", b(caseTCP), caseIperf, false, 0.95},
		{"[B] bp websocket / iperf3", b(caseWS), caseIperf, false, 0.7},
		{"[B] bp-relay / haproxy", b(caseRelay), caseHAProxy, false, 1.3},
		{"[B] bp-relay / socat", b(caseRelay), caseSocat, false, 1.1},
		{"CPU/GB [B] / [A] bp tcp", b(caseTCP), caseTCP, true, 0},
		{"CPU/GB [B] / [A] bp websocket", b(caseWS), caseWS, true, 0},
		{"CPU/GB [B] / [A] bp-relay", b(caseRelay), caseRelay, true, 0},
		{"CPU/GB [B] bp tcp / iperf3", b(caseTCP), caseIperf, true, 1.1},
		{"CPU/GB [B] bp-relay / socat", b(caseRelay), caseSocat, true, 0},
	}
	return nil
}
