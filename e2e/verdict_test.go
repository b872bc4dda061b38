package e2e

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/report"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// verdictOf returns the report's verdict, failing the test without one.
func verdictOf(t *testing.T, sum report.Summary, code int, stderr string) verdict.Verdict {
	t.Helper()
	if code != 0 || !sum.Completed {
		t.Fatalf("client exit %d, report %+v; stderr:\n%s", code, sum, stderr)
	}
	if sum.Verdict == nil {
		t.Fatalf("the report has no verdict: %+v", sum)
	}
	v := *sum.Verdict
	t.Logf("verdict %s (%s): %s; reasons %q", v.Outcome, v.Confidence, v.Summary, v.Reasons)
	return v
}

func between(t *testing.T, what string, got *float64, lo, hi float64) {
	t.Helper()
	switch {
	case got == nil:
		t.Errorf("%s missing, want between %v and %v", what, lo, hi)
	case *got < lo || *got > hi:
		t.Errorf("%s = %.3f, want between %v and %v", what, *got, lo, hi)
	}
}

// TestVerdictDirect: a server that stops reading 1 s into the run for 3 s,
// straight from the client, 64 KiB socket buffers at both ends. The client
// says its writes blocked soon after the stop, that the path absorbed about
// what the two sockets hold, and, with the kernel read, how much of it sat
// in its own send queue.
func TestVerdictDirect(t *testing.T) {
	t.Parallel()
	const sndbuf, rcvbuf = 64 << 10, 64 << 10
	srv := startServer(t, "--pause-after", "1s", "--pause-for", "3s", "--rcvbuf", "64KiB")
	sum, code, stderr := runClient(t, "--target", srv.TCPURL(), "--duration", "5s", "--rate", "160",
		"--payload-size", "16KiB", "--sndbuf", "64KiB")
	v := verdictOf(t, sum, code, stderr)
	if v.Outcome != verdict.OutcomeBlocked {
		t.Fatalf("outcome %q, want %q", v.Outcome, verdict.OutcomeBlocked)
	}
	between(t, "server_stopped_at_seconds", v.ServerStoppedAtSeconds, 0.7, 1.8)
	between(t, "block_delay_seconds", v.BlockDelaySeconds, 0, 1)
	between(t, "server_resumed_at_seconds", v.ServerResumedAtSeconds, 3.5, 5.5)
	// Socket buffers only: within a factor of 3 of what was asked for
	// (the kernel doubles each, and keeps part for its own bookkeeping).
	if a := v.AbsorbedBytes; a == nil || *a < (sndbuf+rcvbuf)/3 || *a > 3*(sndbuf+rcvbuf) {
		t.Errorf("absorbed_bytes = %v, want within a factor of 3 of %d (the two socket buffers)", deref(a), sndbuf+rcvbuf)
	}
	if v.StalledConnections != 1 || v.BlockedConnections != 1 {
		t.Errorf("stalled %d, blocked %d connections, want 1 and 1", v.StalledConnections, v.BlockedConnections)
	}
	if runtime.GOOS != "linux" {
		return
	}
	own := v.OwnSendQueueBytes
	if own == nil || *own < sndbuf/2 || *own > 4*sndbuf {
		t.Errorf("own_send_queue_bytes = %v, want near SO_SNDBUF (%d asked, doubled by the kernel)", deref(own), sndbuf)
	}
	if v.BeyondClientBytes == nil || *v.BeyondClientBytes <= 0 || *v.BeyondClientBytes+*own != *v.AbsorbedBytes {
		t.Errorf("beyond_client_bytes = %v, want the rest of absorbed_bytes %v above own %v", deref(v.BeyondClientBytes), deref(v.AbsorbedBytes), deref(own))
	}
	if v.Confidence != verdict.High {
		t.Errorf("confidence %q, want high with the kernel read and a clean stop and resume", v.Confidence)
	}
}

// TestVerdictRelayBuffer: the same stop behind bp-relay --buffer 8MiB
// (WebSocket from the client, TCP to the server). The client blocks only
// after the relay's buffer filled: it says at least 8 MiB were absorbed,
// nearly all of it beyond its own socket.
func TestVerdictRelayBuffer(t *testing.T) {
	t.Parallel()
	const buffer = 8 << 20
	srv := startServer(t, "--pause-after", "1s", "--pause-for", "4s", "--rcvbuf", "64KiB")
	relay := startRelay(t, srv.TCPURL(), "--buffer", "8MiB", "--downstream-rcvbuf", "64KiB", "--upstream-sndbuf", "64KiB")
	sum, code, stderr := runClient(t, "--target", relay.Target("websocket"), "--duration", "6s", "--rate", "160",
		"--payload-size", "64KiB", "--sndbuf", "64KiB")
	v := verdictOf(t, sum, code, stderr)
	if v.Outcome != verdict.OutcomeBlocked {
		t.Fatalf("outcome %q, want %q (10 MB/s for 4 s fills 8 MiB)", v.Outcome, verdict.OutcomeBlocked)
	}
	if a := v.AbsorbedBytes; a == nil || *a < buffer || *a > buffer+8<<20 {
		t.Errorf("absorbed_bytes = %v, want at least the relay's %d and not far above", deref(a), buffer)
	}
	between(t, "server_stopped_at_seconds", v.ServerStoppedAtSeconds, 0.7, 1.8)
	// 10 MB/s into 8 MiB and the sockets' buffers: most of a second.
	between(t, "block_delay_seconds", v.BlockDelaySeconds, 0.4, 3)
	if b := v.BeyondClientBytes; runtime.GOOS == "linux" && (b == nil || *b < buffer) {
		t.Errorf("beyond_client_bytes = %v, want at least the relay's buffer %d", deref(b), buffer)
	}
}

// TestVerdictNotStalled: a server that never pauses; the client writes far
// below what it reads. The verdict: the server never stalled.
func TestVerdictNotStalled(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	sum, code, stderr := runClient(t, "--target", srv.TCPURL(), "--duration", "2s", "--rate", "100", "--payload-size", "16KiB")
	v := verdictOf(t, sum, code, stderr)
	if v.Outcome != verdict.OutcomeNotStalled || v.StalledConnections != 0 {
		t.Errorf("outcome %q with %d stalled connections, want %q and 0", v.Outcome, v.StalledConnections, verdict.OutcomeNotStalled)
	}
	if v.ServerStoppedAtSeconds != nil || v.AbsorbedBytes != nil {
		t.Errorf("a server that never stopped has no stop time or absorbed bytes: %+v", v)
	}
	if v.AckIntervalSeconds < 0.05 || v.AckIntervalSeconds > 0.5 {
		t.Errorf("ack_interval_seconds = %v, want about the server's 0.1", v.AckIntervalSeconds)
	}
}

// TestVerdictText: the text report says it in words.
func TestVerdictText(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--pause-after", "500ms", "--pause-for", "2s", "--rcvbuf", "64KiB")
	p := startProc(t, "bp-client", nil, "--target", srv.TCPURL(), "--duration", "3s", "--rate", "160",
		"--payload-size", "16KiB", "--sndbuf", "64KiB", "--output", "text", "--progress", "off", "--metrics-addr", "")
	if code := p.Wait(t, time.Minute); code != 0 {
		t.Fatalf("client exit %d; stderr:\n%s", code, p.Stderr())
	}
	out := p.Stdout()
	for _, want := range []string{"verdict", "the server stopped reading at", "writes first blocked", "confidence"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
