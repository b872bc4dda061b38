package e2e

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Relay is a running bp-relay.
type Relay struct {
	*Proc
	HTTPAddr string // host:port of /ws, /metrics, /healthz
	TCPAddr  string // host:port of the raw TCP listener
}

// startRelay starts bp-relay on loopback with free ports and JSON logs,
// forwarding to upstream; args come last, so they can override the
// defaults. It waits until the relay listens.
func startRelay(t testing.TB, upstream string, args ...string) *Relay {
	t.Helper()
	all := append([]string{"--http-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0", "--log-format", "json",
		"--upstream", upstream}, args...)
	p := startProc(t, "bp-relay", nil, all...)
	l := p.WaitLog(t, "bp-relay listening", 20*time.Second)
	r := &Relay{Proc: p}
	r.HTTPAddr, _ = l["http"].(string)
	r.TCPAddr, _ = l["tcp"].(string)
	if r.HTTPAddr == "" || r.TCPAddr == "" {
		t.Fatalf("bp-relay logged no addresses: %v", l)
	}
	return r
}

// Target is the client's --target for protocol "tcp" or "websocket".
func (r *Relay) Target(proto string) string {
	if proto == "tcp" {
		return "tcp://" + r.TCPAddr
	}
	return "ws://" + r.HTTPAddr + "/ws"
}

// MetricsURL is the relay's /metrics (on its HTTP listener by default).
func (r *Relay) MetricsURL() string { return "http://" + r.HTTPAddr + "/metrics" }

func serverTarget(s *Server, proto string) string {
	if proto == "tcp" {
		return s.TCPURL()
	}
	return s.WSURL()
}

// TestRelayPaths runs bp-client -> bp-relay -> bp-server for every pair of
// transports and every direction: every hop moves exactly the bytes asked
// for, and the client's acks cover everything it wrote (acks pass through
// the relay end to end).
func TestRelayPaths(t *testing.T) {
	const count, size = 40, 48 << 10
	const total = count * size
	srv := startServer(t, "--sample-interval", "0")
	relays := map[string]*Relay{ // by upstream protocol
		"tcp":       startRelay(t, serverTarget(srv, "tcp"), "--buffer", "1MiB", "--name", "r-tcp"),
		"websocket": startRelay(t, serverTarget(srv, "websocket"), "--name", "r-ws"),
	}
	for _, path := range []struct{ down, up string }{
		{"tcp", "tcp"}, {"websocket", "websocket"}, {"websocket", "tcp"}, {"tcp", "websocket"},
	} {
		for _, dir := range []string{"up", "down", "both"} {
			t.Run(path.down+"-"+path.up+"/"+dir, func(t *testing.T) {
				relay := relays[path.up]
				rBefore, sBefore := scrape(t, relay.MetricsURL()), scrape(t, srv.MetricsURL())
				sum, code, stderr := runClient(t, "--target", relay.Target(path.down), "--direction", dir,
					"--count", strconv.Itoa(count), "--payload-size", strconv.Itoa(size), "--duration", "0")
				if code != 0 || !sum.Completed {
					t.Fatalf("client exit %d, report %+v; stderr:\n%s\nrelay:\n%s", code, sum, stderr, relay.Stderr())
				}
				up, down := dir != "down", dir != "up"
				if up && (sum.BytesWritten != total || sum.BytesAcked != total) {
					t.Errorf("client wrote %d, acked %d; want %d", sum.BytesWritten, sum.BytesAcked, total)
				}
				if down && sum.BytesRead != total {
					t.Errorf("client read %d, want %d", sum.BytesRead, total)
				}
				// The relay logs its close after the client is done: wait for
				// its counters, then compare what each hop moved.
				hops := 0.0
				if up {
					hops++
				}
				if down {
					hops++
				}
				delta := func(after, before Scrape, name string) float64 { return after.Sum(name) - before.Sum(name) }
				eventually(t, 5*time.Second, func() string {
					rAfter := scrape(t, relay.MetricsURL())
					if got := delta(rAfter, rBefore, "bp_bytes_read_total"); got != hops*total {
						return fmt.Sprintf("relay read %v bytes, want %v", got, hops*total)
					}
					if got := delta(rAfter, rBefore, "bp_bytes_written_total"); got != hops*total {
						return fmt.Sprintf("relay wrote %v bytes, want %v", got, hops*total)
					}
					if got := rAfter.Sum("bp_relay_buffered_bytes"); got != 0 {
						return fmt.Sprintf("relay still holds %v bytes", got)
					}
					if got := delta(rAfter, rBefore, "bp_connection_errors_total"); got != 0 {
						return fmt.Sprintf("relay counted %v connection errors", got)
					}
					sAfter := scrape(t, srv.MetricsURL())
					if up {
						if got := delta(sAfter, sBefore, "bp_bytes_read_total"); got != total {
							return fmt.Sprintf("server read %v, want %v", got, total)
						}
					}
					if down {
						if got := delta(sAfter, sBefore, "bp_bytes_written_total"); got != total {
							return fmt.Sprintf("server wrote %v, want %v", got, total)
						}
						if got := delta(sAfter, sBefore, "bp_bytes_acked_total"); got != total {
							return fmt.Sprintf("server saw %v bytes acked, want %v", got, total)
						}
					}
					return ""
				})
			})
		}
	}
}

// TestRelayChain: client -> relay A (WebSocket in) -> relay B (TCP in) ->
// server. B sees A in the hello's via, and the bytes match at every hop.
func TestRelayChain(t *testing.T) {
	srv := startServer(t, "--sample-interval", "0")
	b := startRelay(t, srv.WSURL(), "--name", "hop-b")
	a := startRelay(t, b.Target("tcp"), "--name", "hop-a", "--buffer", "4MiB")
	sum, code, stderr := runClient(t, "--target", a.Target("websocket"), "--direction", "both",
		"--count", "32", "--payload-size", "64KiB", "--duration", "0")
	if code != 0 || sum.BytesAcked != 32<<16 || sum.BytesRead != 32<<16 {
		t.Fatalf("client exit %d, report %+v; stderr:\n%s", code, sum, stderr)
	}
	opened := b.WaitLog(t, "connection opened", 5*time.Second)
	if via := fmt.Sprint(opened["via"]); via != "[hop-a]" {
		t.Errorf("relay B saw via %s, want [hop-a]", via)
	}
	eventually(t, 5*time.Second, func() string {
		for _, hop := range []struct {
			name string
			url  string
		}{{"a", a.MetricsURL()}, {"b", b.MetricsURL()}} {
			m := scrape(t, hop.url)
			if r, w := m.Sum("bp_bytes_read_total"), m.Sum("bp_bytes_written_total"); r != 2*32<<16 || w != 2*32<<16 {
				return fmt.Sprintf("relay %s read %v, wrote %v; want %v each", hop.name, r, w, 2*32<<16)
			}
		}
		return ""
	})
}

// blockedAfter starts a client against target and returns how many bytes
// it wrote before its writes stopped moving (the path is full).
func blockedAfter(t *testing.T, target string) (int64, *Client) {
	t.Helper()
	c := startClient(t, "--target", target, "--duration", "60s", "--payload-size", "16KiB", "--sndbuf", "32KiB")
	var last float64 = -1
	stable := 0
	for i := 0; i < 150 && stable < 5; i++ { // at most 15 s
		time.Sleep(100 * time.Millisecond)
		w := scrape(t, c.MetricsURL).Sum("bp_bytes_written_total")
		if w == last && w > 0 {
			stable++
		} else {
			stable = 0
		}
		last = w
	}
	if stable < 5 {
		t.Fatalf("the client never blocked (wrote %v bytes)", last)
	}
	return int64(last), c
}

// TestRelayBackpressure: the server stops reading. Through a stream relay
// the client blocks after about the socket buffers on the way; through a
// relay with an 8 MiB buffer it writes about 8 MiB more, the relay's
// buffered bytes reach nearly 8 MiB and it counts the pause in its reading.
func TestRelayBackpressure(t *testing.T) {
	srv := startServer(t, "--pause-after", "0s", "--pause-for", "1h", "--rcvbuf", "32KiB", "--sample-interval", "0")
	small := []string{"--downstream-rcvbuf", "32KiB", "--upstream-sndbuf", "32KiB", "--sample-interval", "0"}
	stream := startRelay(t, srv.TCPURL(), small...)
	bounded := startRelay(t, srv.TCPURL(), append(small, "--buffer", "8MiB")...)

	streamWritten, _ := blockedAfter(t, stream.Target("tcp"))
	boundedWritten, _ := blockedAfter(t, bounded.Target("websocket"))
	m := scrape(t, bounded.MetricsURL())
	buffered := m.Value(t, "bp_relay_buffered_bytes", "direction", "up")
	paused := m.Value(t, "bp_relay_read_paused_total", "direction", "up")
	pausedNow := m.Value(t, "bp_relay_reading_paused", "direction", "up")
	t.Logf("stream: client blocked after %d bytes; 8MiB buffer: after %d (relay holds %v, paused %v times)", streamWritten, boundedWritten, buffered, paused)

	const buffer = 8 << 20
	if streamWritten > 4<<20 {
		t.Errorf("stream relay: the client wrote %d bytes before blocking, want well under 4 MiB", streamWritten)
	}
	if extra := boundedWritten - streamWritten; extra < buffer*3/4 || extra > buffer+4<<20 {
		t.Errorf("the 8 MiB relay let the client write %d bytes more than the stream relay, want about %d", extra, buffer)
	}
	if buffered < buffer-256<<10 || buffered > buffer {
		t.Errorf("relay buffered %v bytes, want near %d and never above", buffered, buffer)
	}
	if paused < 1 || pausedNow != 1 {
		t.Errorf("relay paused reading %v times, %v paused now; want >= 1 and 1", paused, pausedNow)
	}
}

// TestRelayUpstreamFailure: an upstream that is down, and one that dies
// mid-run, close the client's connection with an error, counted on the
// relay; the relay keeps serving new connections.
func TestRelayUpstreamFailure(t *testing.T) {
	port := freePort(t)
	upAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	relay := startRelay(t, "tcp://"+upAddr, "--sample-interval", "0")

	// Nothing listens upstream.
	for _, proto := range []string{"tcp", "websocket"} {
		sum, code, _ := runClient(t, "--target", relay.Target(proto), "--count", "10", "--duration", "0")
		if code != 1 || sum.Completed {
			t.Errorf("%s client with upstream down: exit %d, completed %v; want 1, false", proto, code, sum.Completed)
		}
	}
	m := scrape(t, relay.MetricsURL())
	if got := m.Value(t, "bp_relay_failures_total", "side", "upstream"); got != 2 {
		t.Errorf("relay counted %v upstream failures, want 2", got)
	}

	// The upstream comes up: the same relay serves (10 messages of the
	// client's default 128 KiB).
	srv := startServer(t, "--tcp-addr", upAddr, "--sample-interval", "0")
	sum, code, stderr := runClient(t, "--target", relay.Target("tcp"), "--count", "10", "--duration", "0")
	if code != 0 || sum.BytesAcked != 10*128<<10 {
		t.Fatalf("client after the upstream came up: exit %d, %+v\n%s", code, sum, stderr)
	}

	// The upstream dies mid-run.
	c := startClient(t, "--target", relay.Target("websocket"), "--duration", "20s", "--rate", "50")
	eventually(t, 10*time.Second, func() string {
		if got := scrape(t, srv.MetricsURL()).Sum("bp_bytes_read_total"); got < 1<<20 {
			return fmt.Sprintf("server read only %v bytes", got)
		}
		return ""
	})
	srv.Signal(t, syscall.SIGKILL)
	srv.Wait(t, 10*time.Second)
	_, code = c.Finish(t, 20*time.Second)
	if code != 1 {
		t.Errorf("client whose upstream died: exit %d, want 1; stderr:\n%s", code, c.Stderr())
	}
	eventually(t, 5*time.Second, func() string {
		if got := scrape(t, relay.MetricsURL()).Value(t, "bp_relay_failures_total", "side", "upstream"); got != 3 {
			return fmt.Sprintf("relay counted %v upstream failures, want 3", got)
		}
		return ""
	})
	if relay.Exited() || !strings.Contains(relay.Stderr(), "connection failed") {
		t.Errorf("relay exited or logged no failure:\n%s", relay.Stderr())
	}

	// Still serving, with a new upstream on the same address.
	startServer(t, "--tcp-addr", upAddr, "--sample-interval", "0")
	if sum, code, stderr := runClient(t, "--target", relay.Target("tcp"), "--count", "10", "--duration", "0"); code != 0 || !sum.Completed {
		t.Fatalf("client after the upstream restarted: exit %d\n%s", code, stderr)
	}
}

// TestRelayConfigErrors: a missing or bad upstream, or a buffer above the
// cap, stops bp-relay at start with exit status 2 and a message naming the
// setting.
func TestRelayConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--upstream"}, // missing
		{[]string{"--upstream", "http://x:1"}, "--upstream"}, // unknown scheme
		{[]string{"--upstream", "tcp://x"}, "--upstream"},    // no port
		{[]string{"--upstream", "tcp://x:1", "--buffer", "2GiB"}, "--buffer"},
	} {
		p := startProc(t, "bp-relay", nil, tc.args...)
		if code := p.Wait(t, 10*time.Second); code != 2 || !strings.Contains(p.Stderr(), tc.want) {
			t.Errorf("bp-relay %q: exit %d, stderr %q; want 2 and %s", tc.args, code, p.Stderr(), tc.want)
		}
	}
}
