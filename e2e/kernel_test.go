package e2e

import (
	"runtime"
	"testing"
	"time"
)

// kernelStatsSkip skips (or, in CI, fails) where the kernel's socket
// statistics these tests assert on are missing: Linux 6.2 for the reader's
// own window, the oldest of the fields used here.
func kernelStatsSkip(t *testing.T, srv *Server) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("kernel socket statistics are Linux's")
	}
	for _, l := range srv.Logs("kernel socket statistics incomplete: their metrics are left out") {
		t.Skipf("this kernel lacks socket statistics the test needs: %v", l["missing"])
	}
}

// TestKernelPausedServer is issue 3's acceptance test with the real
// binaries: a server that stops reading for 4 s, both ends with 64 KiB
// socket buffers. On the client: the peer window reaches zero, zero-window
// and receive-window-limited time cover most of the pause (after the
// buffers fill), the send queue is near SO_SNDBUF, and the report says so.
// On the server: the receive queue near its buffer, its advertised window
// at zero, the window closing logged, and the host's TCPToZeroWindowAdv
// growing.
func TestKernelPausedServer(t *testing.T) {
	// Not parallel with the other e2e tests: under their load (1,000
	// connections, slow-connection load) the sender's segments can come out
	// small, their kernel overhead fills the server's receive buffer with
	// little payload, and the "receive queue near its buffer" check measures
	// the neighbours instead of the pause.
	const pauseAfter, pause = time.Second, 4 * time.Second
	const buffer = 64 << 10                              // asked for; the kernel doubles it
	minimum := 0.4 * pause.Seconds()                     // wide: buffers fill first, samples are 100 ms apart
	maximum := (pause + 2500*time.Millisecond).Seconds() // never more than the run itself
	for _, proto := range protocols {
		t.Run(proto.label, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, "--pause-after", pauseAfter.String(), "--pause-for", pause.String(),
				"--rcvbuf", "64KiB", "--log-interval", "0")
			kernelStatsSkip(t, srv)
			zeroAdvBefore, hostCounter := scrape(t, srv.MetricsURL()).Get("bp_host_tcp_to_zero_window_adv_total")
			began := time.Now()
			c := startClient(t, "--target", proto.target(srv), "--duration", "6s",
				"--payload-size", "16KiB", "--sndbuf", "64KiB")

			// Inside the pause (which starts about 1 s into the connection),
			// once the buffers are full: the gauges.
			peerMin, ownMin := -1.0, -1.0
			var sendQueue, recvQueue float64
			for _, at := range []time.Duration{2500 * time.Millisecond, 3500 * time.Millisecond, 4500 * time.Millisecond} {
				time.Sleep(time.Until(began.Add(at)))
				cm, sm := scrape(t, c.MetricsURL), scrape(t, srv.MetricsURL())
				if v, ok := cm.Get("bp_socket_peer_window_min_bytes", "protocol", proto.label); ok && (peerMin < 0 || v < peerMin) {
					peerMin = v
				}
				if v, ok := sm.Get("bp_socket_own_window_min_bytes", "protocol", proto.label); ok && (ownMin < 0 || v < ownMin) {
					ownMin = v
				}
				sendQueue = max(sendQueue, cm.Value(t, "bp_socket_send_queue_bytes", "protocol", proto.label))
				recvQueue = max(recvQueue, sm.Value(t, "bp_socket_recv_queue_bytes", "protocol", proto.label))
			}
			t.Logf("during the pause: client peer window min %v, send queue %v; server own window min %v, recv queue %v",
				peerMin, sendQueue, ownMin, recvQueue)
			if peerMin != 0 {
				t.Errorf("client bp_socket_peer_window_min_bytes: lowest %v during the pause, want 0", peerMin)
			}
			if ownMin != 0 {
				t.Errorf("server bp_socket_own_window_min_bytes: lowest %v during the pause, want 0", ownMin)
			}
			if sendQueue < buffer/2 || sendQueue > 4*buffer {
				t.Errorf("client bp_socket_send_queue_bytes = %v during the pause, want near SO_SNDBUF (%d asked, doubled by the kernel)", sendQueue, buffer)
			}
			// How much payload fits before the window closes is the kernel's
			// call: each segment's overhead counts against the buffer, and
			// under TCP memory pressure (other programs' sockets on a shared
			// machine) it clamps the buffer further: 11.6 KB was seen with the
			// window at 0 under other tests' load. So: payload held (at least
			// a sixteenth of the buffer: the window closed on payload, not on
			// nothing), at most the doubled buffer and some.
			if recvQueue < buffer/16 || recvQueue > 4*buffer {
				t.Errorf("server bp_socket_recv_queue_bytes = %v during the pause, want at least %d and at most about SO_RCVBUF (%d asked, doubled by the kernel)", recvQueue, buffer/16, buffer)
			}

			c.WaitLinger(t, 30*time.Second)
			cm := scrape(t, c.MetricsURL)
			sum, code := c.Finish(t, 10*time.Second)
			if code != 0 || !sum.Completed {
				t.Fatalf("client exit %d, report %+v; stderr:\n%s", code, sum, c.Stderr())
			}
			for _, name := range []string{"bp_socket_peer_window_zero_seconds_total", "bp_socket_rwnd_limited_seconds_total"} {
				v := cm.Value(t, name, "protocol", proto.label)
				t.Logf("client %s = %.2f", name, v)
				if v < minimum || v > maximum {
					t.Errorf("client %s = %.2f, want between %.1f and %.1f (pause %s)", name, v, minimum, maximum, pause)
				}
			}

			// The report shows the same.
			switch {
			case sum.PeerWindowZeroSeconds == nil || sum.RwndLimitedShare == nil || sum.PeakSendQueueBytes == nil:
				t.Errorf("report lacks the kernel's view: %+v", sum)
			default:
				t.Logf("report: peer window zero %.2f s, rwnd-limited share %.2f, peak send queue %d",
					*sum.PeerWindowZeroSeconds, *sum.RwndLimitedShare, *sum.PeakSendQueueBytes)
				if *sum.PeerWindowZeroSeconds < minimum || *sum.PeerWindowZeroSeconds > maximum {
					t.Errorf("report peer_window_zero_seconds = %.2f, want between %.1f and %.1f", *sum.PeerWindowZeroSeconds, minimum, maximum)
				}
				if share := *sum.RwndLimitedShare; share < minimum/sum.DurationSeconds || share > 1 {
					t.Errorf("report rwnd_limited_share = %.2f, want at least %.2f", share, minimum/sum.DurationSeconds)
				}
				if q := *sum.PeakSendQueueBytes; q < buffer/2 || q > 4*buffer {
					t.Errorf("report peak_send_queue_bytes = %d, want near SO_SNDBUF", q)
				}
			}

			// The server: once its session has ended (its last sample in).
			eventually(t, 10*time.Second, func() string {
				sm := scrape(t, srv.MetricsURL())
				if n := sm.Value(t, "bp_connections", "protocol", proto.label); n != 0 {
					return "server still has the connection open"
				}
				v := sm.Value(t, "bp_socket_own_window_zero_seconds_total", "protocol", proto.label)
				if v < minimum || v > maximum {
					return "server bp_socket_own_window_zero_seconds_total out of range: " + time.Duration(v*float64(time.Second)).String()
				}
				if hostCounter {
					if after := sm.Value(t, "bp_host_tcp_to_zero_window_adv_total"); after <= zeroAdvBefore {
						return "bp_host_tcp_to_zero_window_adv_total did not grow"
					}
				}
				return ""
			})
			if len(srv.Logs("receive window closed")) == 0 || len(srv.Logs("receive window reopened")) == 0 {
				t.Errorf("server did not log its window closing and reopening; stderr:\n%s", srv.Stderr())
			}
			closed := srv.Logs("connection closed")
			if len(closed) != 1 || logNumber(t, closed[0]["receive_window_closes"]) < 1 {
				t.Errorf("server's connection closed line: %v, want receive_window_closes >= 1", closed)
			}
		})
	}
}

// TestKernelUnthrottled: a server that keeps up shows no zero-window time,
// on either side. The client writes at a rate far below what the server
// reads, even with race-checked binaries on a busy machine.
func TestKernelUnthrottled(t *testing.T) {
	t.Parallel()
	for _, proto := range protocols {
		t.Run(proto.label, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, "--log-interval", "0")
			kernelStatsSkip(t, srv)
			sum, code, stderr := runClient(t, "--target", proto.target(srv), "--duration", "1500ms",
				"--payload-size", "16KiB", "--rate", "100")
			if code != 0 || !sum.Completed {
				t.Fatalf("client exit %d, report %+v; stderr:\n%s", code, sum, stderr)
			}
			if sum.PeerWindowZeroSeconds == nil || *sum.PeerWindowZeroSeconds != 0 {
				t.Errorf("report peer_window_zero_seconds = %v, want present and 0", sum.PeerWindowZeroSeconds)
			}
			eventually(t, 10*time.Second, func() string {
				sm := scrape(t, srv.MetricsURL())
				if n := sm.Value(t, "bp_connections", "protocol", proto.label); n != 0 {
					return "server still has the connection open"
				}
				if v := sm.Value(t, "bp_socket_own_window_zero_seconds_total", "protocol", proto.label); v != 0 {
					t.Errorf("server bp_socket_own_window_zero_seconds_total = %v, want 0", v)
				}
				return ""
			})
			if n := len(srv.Logs("receive window closed")); n != 0 {
				t.Errorf("server logged its window closing %d times, want none", n)
			}
		})
	}
}

// TestKernelSamplingOff: --sample-interval 0 exports no socket metrics and
// leaves the kernel's view out of the report.
func TestKernelSamplingOff(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--sample-interval", "0", "--log-interval", "0")
	sum, code, stderr := runClientEnv(t, []string{"BP_SAMPLE_INTERVAL=0"}, "--target", srv.TCPURL(), "--duration", "300ms", "--rate", "100")
	if code != 0 || !sum.Completed {
		t.Fatalf("client exit %d, report %+v; stderr:\n%s", code, sum, stderr)
	}
	if sum.PeerWindowZeroSeconds != nil || sum.RwndLimitedSeconds != nil || sum.PeakSendQueueBytes != nil {
		t.Errorf("report with sampling off has kernel fields: %+v", sum)
	}
	sm := scrape(t, srv.MetricsURL())
	for name := range sm {
		if len(name) > len("bp_socket_") && name[:len("bp_socket_")] == "bp_socket_" {
			t.Errorf("server with --sample-interval 0 exports %s", name)
		}
	}
}
