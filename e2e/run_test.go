package e2e

import (
	"fmt"
	"testing"
	"time"
)

// protocols are the two transports, with how a client targets each.
var protocols = []struct {
	label  string // the metrics' protocol label
	target func(*Server) string
}{
	{"tcp", (*Server).TCPURL},
	{"websocket", (*Server).WSURL},
}

// TestUpExactBytes: an unthrottled upload's bytes agree to the byte in the
// client's report, the client's metrics and the server's metrics, for a run
// bounded by count (total known in advance) and one bounded by duration.
func TestUpExactBytes(t *testing.T) {
	t.Parallel()
	// 3001 is not a divisor of anything nice: partial frames would show.
	const payload, count = 3001, 700
	for _, proto := range protocols {
		for _, bound := range []string{"count", "duration"} {
			t.Run(proto.label+"/"+bound, func(t *testing.T) {
				t.Parallel()
				srv := startServer(t)
				args := []string{"--target", proto.target(srv), "--payload-size", fmt.Sprint(payload)}
				if bound == "count" {
					args = append(args, "--count", fmt.Sprint(count), "--duration", "0")
				} else {
					args = append(args, "--duration", "1s")
				}
				c := startClient(t, args...)
				c.WaitLinger(t, 30*time.Second)
				cm := scrape(t, c.MetricsURL)
				sum, code := c.Finish(t, 10*time.Second)
				if code != 0 || !sum.Completed {
					t.Fatalf("client exit %d, report %+v; stderr:\n%s", code, sum, c.Stderr())
				}
				want := sum.BytesWritten
				if bound == "count" && want != payload*count {
					t.Errorf("report bytes_written = %d, want %d", want, payload*count)
				}
				if want <= 0 {
					t.Fatalf("report bytes_written = %d, want > 0", want)
				}
				if sum.BytesAcked != want {
					t.Errorf("report bytes_acked = %d, want %d", sum.BytesAcked, want)
				}
				if got := cm.Value(t, "bp_bytes_written_total", "protocol", proto.label); int64(got) != want {
					t.Errorf("client bp_bytes_written_total = %.0f, want %d", got, want)
				}
				if got := cm.Value(t, "bp_bytes_acked_total", "protocol", proto.label); int64(got) != want {
					t.Errorf("client bp_bytes_acked_total = %.0f, want %d", got, want)
				}
				if got := cm.Value(t, "bp_bytes_in_pipe", "protocol", proto.label); got != 0 {
					t.Errorf("client bp_bytes_in_pipe = %.0f after the run, want 0", got)
				}
				if got := cm.Value(t, "bp_write_blocked_seconds_count", "protocol", proto.label); int64(got) != sum.WriteCalls {
					t.Errorf("client bp_write_blocked_seconds_count = %.0f, report write_calls %d", got, sum.WriteCalls)
				}
				// The server read it all before its final ack; the client
				// only completes after that ack.
				sm := scrape(t, srv.MetricsURL())
				if got := sm.Value(t, "bp_bytes_read_total", "protocol", proto.label); int64(got) != want {
					t.Errorf("server bp_bytes_read_total{protocol=%q} = %.0f, want %d", proto.label, got, want)
				}
				if got := sm.Value(t, "bp_connections_opened_total", "protocol", proto.label); got != 1 {
					t.Errorf("server bp_connections_opened_total = %.0f, want 1", got)
				}
			})
		}
	}
}

// TestDownAndBothExactBytes: with the server writing (down) or both sides
// writing (both), every byte written is read, on both sides' counters.
func TestDownAndBothExactBytes(t *testing.T) {
	t.Parallel()
	const payload, count = 2999, 500
	for _, proto := range protocols {
		for _, dir := range []string{"down", "both"} {
			t.Run(proto.label+"/"+dir, func(t *testing.T) {
				t.Parallel()
				srv := startServer(t)
				c := startClient(t, "--target", proto.target(srv), "--direction", dir,
					"--payload-size", fmt.Sprint(payload), "--count", fmt.Sprint(count), "--duration", "0")
				c.WaitLinger(t, 30*time.Second)
				cm := scrape(t, c.MetricsURL)
				sum, code := c.Finish(t, 10*time.Second)
				if code != 0 || !sum.Completed {
					t.Fatalf("client exit %d, report %+v; stderr:\n%s", code, sum, c.Stderr())
				}
				const want = payload * count
				if sum.BytesRead != want {
					t.Errorf("report bytes_read = %d, want %d", sum.BytesRead, want)
				}
				if got := cm.Value(t, "bp_bytes_read_total", "protocol", proto.label); got != want {
					t.Errorf("client bp_bytes_read_total = %.0f, want %d", got, want)
				}
				wantUp := int64(0)
				if dir == "both" {
					wantUp = want
				}
				if sum.BytesWritten != wantUp || sum.BytesAcked != wantUp {
					t.Errorf("report bytes_written %d, bytes_acked %d; want %d", sum.BytesWritten, sum.BytesAcked, wantUp)
				}
				// The server's final ack handling may trail the client's
				// exit by a moment.
				eventually(t, 5*time.Second, func() string {
					sm := scrape(t, srv.MetricsURL())
					w := sm.Value(t, "bp_bytes_written_total", "protocol", proto.label)
					a := sm.Value(t, "bp_bytes_acked_total", "protocol", proto.label)
					r := sm.Value(t, "bp_bytes_read_total", "protocol", proto.label)
					p := sm.Value(t, "bp_bytes_in_pipe", "protocol", proto.label)
					if w != want || a != want || r != float64(wantUp) || p != 0 {
						return fmt.Sprintf("server written %.0f, acked %.0f, read %.0f, in pipe %.0f; want %d, %d, %d, 0", w, a, r, p, want, want, wantUp)
					}
					return ""
				})
			})
		}
	}
}

// TestClientPauseBlocksServerWrites: a downloading client that stops reading
// for 3 s makes the server's writes block for most of that time.
func TestClientPauseBlocksServerWrites(t *testing.T) {
	t.Parallel()
	const pause = 3 * time.Second
	for _, proto := range protocols {
		t.Run(proto.label, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, "--sndbuf", "64KiB")
			sum, code, stderr := runClient(t, "--target", proto.target(srv), "--direction", "down",
				"--duration", "5s", "--rate", "2000", "--payload-size", "16KiB",
				"--pause-after", "1s", "--pause-for", pause.String(), "--rcvbuf", "64KiB")
			if code != 0 || !sum.Completed {
				t.Fatalf("client exit %d, report %+v; stderr:\n%s", code, sum, stderr)
			}
			sm := scrape(t, srv.MetricsURL())
			blocked := sm.Value(t, "bp_write_blocked_seconds_sum", "protocol", proto.label)
			stalls := sm.Value(t, "bp_stalls_total", "protocol", proto.label)
			if blocked < 0.5*pause.Seconds() || blocked > 5 {
				t.Errorf("server bp_write_blocked_seconds_sum = %.2f s, want most of the %s pause", blocked, pause)
			}
			if stalls < 1 {
				t.Errorf("server bp_stalls_total = %.0f, want >= 1", stalls)
			}
			if w := sm.Value(t, "bp_bytes_written_total", "protocol", proto.label); int64(w) != sum.BytesRead {
				t.Errorf("server wrote %.0f bytes, client read %d", w, sum.BytesRead)
			}
		})
	}
}

// TestServerPauseBlocksClient: a server that stops reading for 4 s holds the
// client's writes back: blocked time covers most of the pause, stalls are
// counted, and bytes in the pipe stop growing during the pause and drain to
// zero at the end.
func TestServerPauseBlocksClient(t *testing.T) {
	t.Parallel()
	const pauseAfter, pause = time.Second, 4 * time.Second
	for _, proto := range protocols {
		t.Run(proto.label, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, "--pause-after", pauseAfter.String(), "--pause-for", pause.String(), "--rcvbuf", "64KiB")
			began := time.Now()
			c := startClient(t, "--target", proto.target(srv), "--duration", "6500ms",
				"--payload-size", "16KiB", "--sndbuf", "64KiB")
			// Sample bytes in the pipe well inside the pause (which starts
			// about 1 s after the connection), once the buffers are full.
			var inPipe []float64
			for _, at := range []time.Duration{2500 * time.Millisecond, 3500 * time.Millisecond, 4500 * time.Millisecond} {
				time.Sleep(time.Until(began.Add(at)))
				inPipe = append(inPipe, scrape(t, c.MetricsURL).Value(t, "bp_bytes_in_pipe", "protocol", proto.label))
			}
			c.WaitLinger(t, 30*time.Second)
			cm := scrape(t, c.MetricsURL)
			sum, code := c.Finish(t, 10*time.Second)
			if code != 0 || !sum.Completed {
				t.Fatalf("client exit %d, report %+v; stderr:\n%s", code, sum, c.Stderr())
			}
			t.Logf("in pipe during the pause: %v; report: blocked %.2f s, stalls %d, peak in pipe %d",
				inPipe, sum.BlockedSeconds, sum.Stalls, sum.PeakBytesInPipe)

			if sum.BlockedSeconds < 0.5*pause.Seconds() {
				t.Errorf("report blocked_seconds = %.2f, want >= %.1f (half the pause)", sum.BlockedSeconds, 0.5*pause.Seconds())
			}
			if sum.Stalls < 1 {
				t.Errorf("report stalls = %d, want >= 1", sum.Stalls)
			}
			if sum.LongestStallSeconds < 0.25*pause.Seconds() {
				t.Errorf("report longest_stall_seconds = %.2f, want a good part of the %s pause", sum.LongestStallSeconds, pause)
			}
			if got := cm.Value(t, "bp_stalls_total", "protocol", proto.label); int64(got) != sum.Stalls || got < 1 {
				t.Errorf("client bp_stalls_total = %.0f, report stalls %d; want equal and >= 1", got, sum.Stalls)
			}
			if got := cm.Value(t, "bp_write_blocked_seconds_sum", "protocol", proto.label); got < 0.5*pause.Seconds() {
				t.Errorf("client bp_write_blocked_seconds_sum = %.2f, want >= %.1f", got, 0.5*pause.Seconds())
			}
			// During the pause: bytes are stuck in the pipe, and their count
			// no longer grows (the writer is blocked, the reader not acking).
			if inPipe[0] <= 0 {
				t.Errorf("bp_bytes_in_pipe = %.0f during the pause, want > 0", inPipe[0])
			}
			for i := 1; i < len(inPipe); i++ {
				if inPipe[i] > inPipe[0] {
					t.Errorf("bp_bytes_in_pipe grew during the pause: %v", inPipe)
				}
			}
			if int64(inPipe[0]) > sum.PeakBytesInPipe {
				t.Errorf("in pipe %.0f during the pause exceeds the reported peak %d", inPipe[0], sum.PeakBytesInPipe)
			}
			// After the run: drained.
			if got := cm.Value(t, "bp_bytes_in_pipe", "protocol", proto.label); got != 0 {
				t.Errorf("bp_bytes_in_pipe = %.0f after the run, want 0", got)
			}
			sm := scrape(t, srv.MetricsURL())
			if got := sm.Value(t, "bp_read_paused_seconds_total", "protocol", proto.label); got < 0.9*pause.Seconds() || got > pause.Seconds()+1 {
				t.Errorf("server bp_read_paused_seconds_total = %.2f, want about %s", got, pause)
			}
			if got := sm.Value(t, "bp_bytes_read_total", "protocol", proto.label); int64(got) != sum.BytesWritten {
				t.Errorf("server read %.0f bytes, client wrote %d", got, sum.BytesWritten)
			}
		})
	}
}

// TestRateRunLastsItsDuration: a paced run lasts its --duration, not until
// its last write: at --rate 2 with --duration 3s the client writes at 0,
// 0.5, ... 2.5 s and then waits out the rest (it ended at 2.5 s before, its
// report saying so), and the server reads every byte it wrote.
func TestRateRunLastsItsDuration(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	began := time.Now()
	sum, code, stderr := runClient(t, "--target", srv.TCPURL(), "--rate", "2", "--payload-size", "1KiB", "--duration", "3s")
	took := time.Since(began)
	if code != 0 || !sum.Completed {
		t.Fatalf("client exit %d, report %+v; stderr:\n%s", code, sum, stderr)
	}
	if sum.DurationSeconds < 3 || sum.DurationSeconds > 3.5 || took < 3*time.Second {
		t.Errorf("report duration_seconds = %.3f, process %s: want 3 s to 3.5 s for --duration 3s", sum.DurationSeconds, took)
	}
	if sum.BytesWritten < 6<<10 || sum.BytesWritten > 7<<10 {
		t.Errorf("report bytes_written = %d, want 6 or 7 writes of 1 KiB at 2 a second for 3 s", sum.BytesWritten)
	}
	if got := scrape(t, srv.MetricsURL()).Value(t, "bp_bytes_read_total", "protocol", "tcp"); int64(got) != sum.BytesWritten {
		t.Errorf("server bp_bytes_read_total = %.0f, client wrote %d", got, sum.BytesWritten)
	}
}
