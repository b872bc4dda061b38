package e2e

import (
	"math"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/report"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// pausedReadBytes is what the server's own log says it had read while
// paused: its count in a "connection progress" line with paused=true.
func pausedReadBytes(t *testing.T, srv *Server) int64 {
	t.Helper()
	for _, l := range srv.Logs("connection progress") {
		if p, _ := l["paused"].(bool); p {
			n, _ := l["read_bytes"].(float64)
			return int64(n)
		}
	}
	t.Fatalf("the server logged no progress while paused")
	return 0
}

// TestVerdictInvariants: the verdict's figures on real runs, at full speed
// and at a set rate, TCP and WebSocket, direct and through a bp-relay,
// against a server that stops reading 1 s in for 1.5 s. Whatever the
// speed: the bytes accepted after the stop never exceed what the path held
// when the writes blocked (within one write); absorbed bytes are at most
// the peak in the pipe; the stop in bytes is exactly what the server's own
// log says it had read; and behind a relay the words never name the
// server's kernel, and the path the server echoed names the relay.
func TestVerdictInvariants(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		proto string // tcp or websocket
		relay bool
		rate  string // "" : as fast as the path allows
	}{
		// Full speed straight to the server: the case that was wrong by
		// a factor (an ack interval of bytes before the stop).
		{"tcp direct full speed", "tcp", false, ""},
		// A set rate, WebSocket: acks by time, the stop between two.
		{"ws direct rate", "websocket", false, "160"},
		// Full speed behind a relay: acks forwarded unchanged.
		{"tcp relay full speed", "tcp", true, ""},
		// A set rate behind a relay, WebSocket from the client.
		{"ws relay rate", "websocket", true, "160"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, "--pause-after", "1s", "--pause-for", "1500ms", "--log-interval", "200ms")
			target := srv.TCPURL()
			if tc.proto == "websocket" {
				target = srv.WSURL()
			}
			if tc.relay {
				relay := startRelay(t, srv.TCPURL(), "--name", "r1")
				target = relay.Target(tc.proto)
			}
			args := []string{"--target", target, "--duration", "3s", "--payload-size", "16KiB"}
			if tc.rate != "" {
				args = append(args, "--rate", tc.rate)
			}
			sum, code, stderr := runClient(t, args...)
			v := verdictOf(t, sum, code, stderr)
			if v.Outcome != verdict.OutcomeBlocked && v.Outcome != verdict.OutcomeAbsorbed {
				t.Fatalf("outcome %q, want the stop seen", v.Outcome)
			}
			checkInvariants(t, sum, v, 16<<10)
			if got, want := deref(v.ServerReadAtStopBytes), pausedReadBytes(t, srv); got != want {
				t.Errorf("server_read_at_stop_bytes = %v, the server's log says it had read %d when paused", got, want)
			}
			wantVia := []string{}
			if tc.relay {
				wantVia = []string{"r1"}
			}
			if v.Via == nil || !slices.Equal(*v.Via, wantVia) {
				t.Errorf("via %v, want %q (echoed by the server)", deref(v.Via), wantVia)
			}
			words := v.Summary + strings.Join(v.Reasons, " ") + v.PeerWords()
			if tc.relay && strings.Contains(words, "server's kernel") {
				t.Errorf("behind a relay the words name the server's kernel: %s", words)
			}
		})
	}
}

// checkInvariants holds what any verdict of a stop must: accepted after
// the stop at most absorbed (within one write), absorbed at most the
// peak in the pipe, the waits adding up to the blocked time.
func checkInvariants(t *testing.T, sum report.Summary, v verdict.Verdict, write int64) {
	t.Helper()
	acc, abs := v.AcceptedAfterStopBytes, v.AbsorbedBytes
	if acc == nil || abs == nil || *acc > *abs+write {
		t.Errorf("accepted_after_stop_bytes %v > absorbed_bytes %v + one write: more accepted after the stop than the path held", deref(acc), deref(abs))
	}
	if abs != nil && *abs > sum.PeakBytesInPipe {
		t.Errorf("absorbed_bytes %d > peak_bytes_in_pipe %d", *abs, sum.PeakBytesInPipe)
	}
	checkWaitsAddUp(t, sum, v)
	t.Logf("accepted %v, absorbed %v, peak in pipe %d, stop at %v within %v s, waits %.2f flowing %.2f stalled of %.2f s",
		deref(acc), deref(abs), sum.PeakBytesInPipe, deref(v.ServerStoppedAtSeconds), deref(v.ServerStoppedWithinSeconds),
		v.WaitedFlowingSeconds, v.WaitedStalledSeconds, sum.BlockedSeconds)
}

// checkWaitsAddUp: the split of the waits, flowing and stalled, adds up
// to the client's blocked_seconds (the report's own count of the time in
// write calls, kept apart from the verdict's), to within 10 ms: the two
// are read moments apart at the end of the run.
func checkWaitsAddUp(t *testing.T, sum report.Summary, v verdict.Verdict) {
	t.Helper()
	if waited := v.WaitedFlowingSeconds + v.WaitedStalledSeconds; math.Abs(waited-sum.BlockedSeconds) > 0.01 {
		t.Errorf("waits %.3f s (flowing) + %.3f s (stalled) = %.3f s, want the %.3f s blocked", v.WaitedFlowingSeconds, v.WaitedStalledSeconds, waited, sum.BlockedSeconds)
	}
}

// TestVerdictFullSpeedNoPause: an unthrottled run against a server that
// never pauses is throughput-bound, not a stall: never `blocked`, no
// stall, and whatever the writes waited was on a flowing path.
func TestVerdictFullSpeedNoPause(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"tcp", "websocket"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			target := srv.TCPURL()
			if proto == "websocket" {
				target = srv.WSURL()
			}
			sum, code, stderr := runClient(t, "--target", target, "--duration", "2s")
			v := verdictOf(t, sum, code, stderr)
			if v.Outcome == verdict.OutcomeBlocked || v.StalledConnections != 0 || v.Stalls != 0 {
				t.Errorf("outcome %q with %d stall(s), want no stall at full speed without a pause", v.Outcome, v.Stalls)
			}
			checkWaitsAddUp(t, sum, v)
			if v.WaitedStalledSeconds != 0 {
				t.Errorf("waited_stalled_seconds = %v without a stall", v.WaitedStalledSeconds)
			}
			t.Logf("blocked %.2f s, waited on a flowing path %.2f s, peak in pipe %d, peak send queue %v",
				sum.BlockedSeconds, v.WaitedFlowingSeconds, sum.PeakBytesInPipe, deref(sum.PeakSendQueueBytes))
		})
	}
}

// TestClientDefaultMetricsTaken: a second client on a machine whose default
// metrics address is taken warns and still prints its report; an address
// the user chose that is taken fails the run.
func TestClientDefaultMetricsTaken(t *testing.T) {
	t.Parallel()
	// Hold the default address; if someone else holds it, it is taken
	// all the same.
	if ln, err := net.Listen("tcp", "127.0.0.1:9101"); err == nil {
		defer ln.Close()
	}
	srv := startServer(t)
	p := startProc(t, "bp-client", nil, "--target", srv.TCPURL(), "--duration", "300ms", "--rate", "50",
		"--output", "json", "--log-format", "json", "--progress", "off")
	if code := p.Wait(t, time.Minute); code != 0 {
		t.Fatalf("client with the default metrics address taken: exit %d, want 0; stderr:\n%s", code, p.Stderr())
	}
	if sum := parseReport(t, p); !sum.Completed {
		t.Errorf("no completed report: %+v", sum)
	}
	if len(p.Logs("default metrics address taken: going on without /metrics (set --metrics-addr to choose one)")) == 0 {
		t.Errorf("no warning about the taken default; stderr:\n%s", p.Stderr())
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	chosen := startProc(t, "bp-client", []string{"BP_METRICS_ADDR=" + taken.Addr().String()}, "--target", srv.TCPURL(),
		"--duration", "300ms", "--output", "json", "--log-format", "json", "--progress", "off")
	if code := chosen.Wait(t, time.Minute); code != 1 {
		t.Errorf("client on a chosen, taken address: exit %d, want 1", code)
	}
}
