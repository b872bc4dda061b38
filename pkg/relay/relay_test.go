package relay_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/relay"
)

// relayResult is what one relayed connection ended with.
type relayResult struct {
	stats relay.Stats
	err   error
}

// testRelay is a relay on 127.0.0.1:0 with a TCP and a WebSocket listener.
type testRelay struct {
	tcpAddr string
	wsURL   string
	results chan relayResult
	buffers *bufferCounter
}

// dialerFor dials target (tcp://host:port or ws://...), with the hello or
// raw, as cmd/bp-relay does.
func dialerFor(target string, opts flow.SocketOptions) relay.Dialer {
	t, err := flow.ParseTarget(target)
	return func(ctx context.Context, h *flow.Hello) (flow.Conn, error) {
		if err != nil {
			return nil, err
		}
		return flow.Dial(ctx, t, h, opts)
	}
}

// startRelay serves both listeners with one relay to target.
func startRelay(t *testing.T, cfg relay.Config, target string, opts flow.SocketOptions) *testRelay {
	t.Helper()
	tr := &testRelay{results: make(chan relayResult, 16), buffers: &bufferCounter{}}
	if cfg.Buffers == nil {
		cfg.Buffers = tr.buffers
	}
	rl := relay.New(cfg, dialerFor(target, opts))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	tr.tcpAddr = flowtest.ServeTCP(t, opts, 200*time.Millisecond, func(ctx context.Context, h *flow.Hello, c flow.Conn, err error) {
		if err != nil {
			flowtest.Send(ctx, tr.results, relayResult{err: err})
			return
		}
		st, err := rl.Serve(ctx, c, h)
		flowtest.Send(ctx, tr.results, relayResult{st, err})
	})
	up := flow.NewUpgrader()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, c, err := up.Accept(w, r)
		if err != nil {
			tr.results <- relayResult{err: err}
			return
		}
		st, err := rl.Serve(ctx, c, h)
		tr.results <- relayResult{st, err}
	}))
	t.Cleanup(srv.Close)
	tr.wsURL = "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	return tr
}

func (tr *testRelay) target(p flow.Protocol) string {
	if p == flow.TCP {
		return "tcp://" + tr.tcpAddr
	}
	return tr.wsURL
}

func dialTarget(ctx context.Context, target string, h flow.Hello, opts flow.SocketOptions) (flow.Conn, error) {
	return dialerFor(target, opts)(ctx, &h)
}

// bufferCounter is a RelayObserver that keeps totals for assertions.
type bufferCounter struct {
	mu                     sync.Mutex
	buffered, peak         map[flow.Direction]int64
	capacity               map[flow.Direction]int64
	pauses                 map[flow.Direction]int
	failures               map[relay.Side]int
	pausedFor              time.Duration
	pausedNow              int
	initOnce               sync.Once
	lastFailure            error
	resumedWithoutStarting int
	budgetWaits            int
	budgetWaitingNow       int
}

func (b *bufferCounter) init() {
	b.initOnce.Do(func() {
		b.buffered, b.peak, b.capacity = map[flow.Direction]int64{}, map[flow.Direction]int64{}, map[flow.Direction]int64{}
		b.pauses, b.failures = map[flow.Direction]int{}, map[relay.Side]int{}
	})
}

func (b *bufferCounter) Buffered(d flow.Direction, delta int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	b.buffered[d] += delta
	b.peak[d] = max(b.peak[d], b.buffered[d])
}
func (b *bufferCounter) Capacity(d flow.Direction, delta int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	b.capacity[d] += delta
}
func (b *bufferCounter) ReadingPaused(d flow.Direction, paused bool, stopped time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	if paused {
		b.pauses[d]++
		b.pausedNow++
		return
	}
	if b.pausedNow == 0 {
		b.resumedWithoutStarting++
	}
	b.pausedNow--
	b.pausedFor += stopped
}
func (b *bufferCounter) BudgetWaiting(d flow.Direction, waiting bool, waited time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if waiting {
		b.budgetWaits++
		b.budgetWaitingNow++
		return
	}
	b.budgetWaitingNow--
}

// budget is the budget waits so far and the readers waiting now.
func (b *bufferCounter) budget() (waits, waitingNow int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.budgetWaits, b.budgetWaitingNow
}

func (b *bufferCounter) Failed(s relay.Side, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	b.failures[s]++
	b.lastFailure = err
}

func (b *bufferCounter) snapshot() (buffered, peak, capacity map[flow.Direction]int64, pauses map[flow.Direction]int, failures map[relay.Side]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	return maps(b.buffered), maps(b.peak), maps(b.capacity), mapsInt(b.pauses), mapsSide(b.failures)
}

func maps(m map[flow.Direction]int64) map[flow.Direction]int64 {
	out := map[flow.Direction]int64{}
	for k, v := range m {
		out[k] = v
	}
	return out
}
func mapsInt(m map[flow.Direction]int) map[flow.Direction]int {
	out := map[flow.Direction]int{}
	for k, v := range m {
		out[k] = v
	}
	return out
}
func mapsSide(m map[relay.Side]int) map[relay.Side]int {
	out := map[relay.Side]int{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestRelayExactBytes runs every pair of transports (downstream, upstream)
// in every direction through one relay: each hop moves exactly the bytes
// the client asked for, acks stay end to end, and the server sees the relay
// in the hello's via.
func TestRelayExactBytes(t *testing.T) {
	const total = 6<<20 + 123 // not a multiple of any block or payload size
	for _, downProto := range []flow.Protocol{flow.TCP, flow.WebSocket} {
		for _, upProto := range []flow.Protocol{flow.TCP, flow.WebSocket} {
			for _, dir := range []flow.Direction{flow.Up, flow.Down, flow.Both} {
				name := fmt.Sprintf("%s-%s/%s", downProto, upProto, dir)
				t.Run(name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					var serverTarget string
					var results <-chan flowtest.ServerResult
					if upProto == flow.TCP {
						var addr string
						addr, results = flowtest.StartTCPServer(t, flow.ReadSettings{}, flow.SocketOptions{})
						serverTarget = "tcp://" + addr
					} else {
						serverTarget, results = flowtest.StartWSServer(t, flow.ReadSettings{})
					}
					rl := startRelay(t, relay.Config{Name: "r1", Buffer: 1 << 20}, serverTarget, flow.SocketOptions{})
					hello := flow.Hello{RunID: "t", Direction: dir, PayloadSize: 40 << 10, TotalBytes: total}
					c, err := dialTarget(ctx, rl.target(downProto), hello, flow.SocketOptions{})
					if err != nil {
						t.Fatal(err)
					}
					snap, err := flow.NewSession(c, flowtest.ClientPlan(dir, total), nil).Run(ctx)
					if err != nil {
						t.Fatalf("client: %v", err)
					}
					res := <-results
					if res.Err != nil {
						t.Fatalf("server: %v", res.Err)
					}
					rr := <-rl.results
					if rr.err != nil {
						t.Fatalf("relay: %v", rr.err)
					}
					if !slices.Equal(res.Hello.Via, []string{"r1"}) {
						t.Errorf("server saw via %q, want [r1]", res.Hello.Via)
					}
					if dir.ClientWrites() {
						if snap.Written != total || snap.Acked != total || rr.stats.Up.Read != total || rr.stats.Up.Written != total || res.Snap.Read != total {
							t.Errorf("up: client wrote %d acked %d; relay read %d wrote %d; server read %d; want %d",
								snap.Written, snap.Acked, rr.stats.Up.Read, rr.stats.Up.Written, res.Snap.Read, total)
						}
					}
					if dir.ServerWrites() {
						if res.Snap.Written != total || res.Snap.Acked != total || rr.stats.Down.Read != total || rr.stats.Down.Written != total || snap.Read != total {
							t.Errorf("down: server wrote %d acked %d; relay read %d wrote %d; client read %d; want %d",
								res.Snap.Written, res.Snap.Acked, rr.stats.Down.Read, rr.stats.Down.Written, snap.Read, total)
						}
					}
					buffered, _, capacity, _, failures := rl.buffers.snapshot()
					if buffered[flow.Up] != 0 || buffered[flow.Down] != 0 || capacity[flow.Up] != 0 || len(failures) != 0 {
						t.Errorf("after the run: buffered %v, capacity %v, failures %v; want all zero", buffered, capacity, failures)
					}
				})
			}
		}
	}
}

// TestRelayChain: two relays in a row both appear in the server's via, in
// order, and the bytes still match.
func TestRelayChain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr, results := flowtest.StartTCPServer(t, flow.ReadSettings{}, flow.SocketOptions{})
	r2 := startRelay(t, relay.Config{Name: "second"}, "tcp://"+addr, flow.SocketOptions{})
	r1 := startRelay(t, relay.Config{Name: "first", Buffer: 4 << 20}, r2.wsURL, flow.SocketOptions{})
	const total = 3 << 20
	c, err := dialTarget(ctx, r1.target(flow.TCP), flow.Hello{Direction: flow.Both, PayloadSize: 64 << 10, TotalBytes: total}, flow.SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := flow.NewSession(c, flowtest.ClientPlan(flow.Both, total), nil).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := <-results
	if res.Err != nil || !slices.Equal(res.Hello.Via, []string{"first", "second"}) {
		t.Fatalf("server: err %v, via %q; want no error, [first second]", res.Err, res.Hello.Via)
	}
	if snap.Written != total || snap.Acked != total || snap.Read != total || res.Snap.Read != total || res.Snap.Written != total {
		t.Errorf("client wrote %d acked %d read %d; server read %d wrote %d; want %d", snap.Written, snap.Acked, snap.Read, res.Snap.Read, res.Snap.Written, total)
	}
}

// TestRelayRaw: a hello-less TCP peer is relayed raw, to a TCP and to a
// WebSocket upstream, which sees a hello-less connection too.
func TestRelayRaw(t *testing.T) {
	for _, upProto := range []flow.Protocol{flow.TCP, flow.WebSocket} {
		t.Run(string(upProto), func(t *testing.T) {
			var target string
			var results <-chan flowtest.ServerResult
			if upProto == flow.TCP {
				var addr string
				addr, results = flowtest.StartTCPServer(t, flow.ReadSettings{}, flow.SocketOptions{})
				target = "tcp://" + addr
			} else {
				target, results = flowtest.StartWSServer(t, flow.ReadSettings{})
			}
			rl := startRelay(t, relay.Config{Name: "raw"}, target, flow.SocketOptions{})
			nc, err := net.Dial("tcp", rl.tcpAddr)
			if err != nil {
				t.Fatal(err)
			}
			payload := []byte(strings.Repeat("raw bytes, no hello\n", 50000))
			if _, err := nc.Write(payload); err != nil {
				t.Fatal(err)
			}
			nc.(*net.TCPConn).CloseWrite()
			// The relay closes once the server has read everything and closed.
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := nc.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Errorf("read after half-close: %d bytes, err %v; want EOF", n, err)
			}
			nc.Close()
			res := <-results
			rr := <-rl.results
			if res.Err != nil || res.Hello != nil || res.Snap.Read != int64(len(payload)) {
				t.Errorf("server: hello %v, read %d, err %v; want none, %d, nil", res.Hello, res.Snap.Read, res.Err, len(payload))
			}
			if rr.err != nil || rr.stats.Up.Read != int64(len(payload)) || rr.stats.Up.Written != int64(len(payload)) {
				t.Errorf("relay: %+v, %v", rr.stats, rr.err)
			}
		})
	}
}

// pushUntilBlocked writes into target until the client's written count has
// not moved for a while (the path is full), and returns that count.
func pushUntilBlocked(t *testing.T, target string, opts flow.SocketOptions) int64 {
	return pushSizeUntilBlocked(t, target, opts, 16<<10)
}

// pushSizeUntilBlocked is pushUntilBlocked with payloads of size bytes.
func pushSizeUntilBlocked(t *testing.T, target string, opts flow.SocketOptions, size int) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := dialTarget(ctx, target, flow.Hello{PayloadSize: size}, opts)
	if err != nil {
		t.Fatal(err)
	}
	plan := flowtest.ClientPlan(flow.Up, 0)
	plan.Write.Payload = flowtest.Payload(size)
	sess := flow.NewSession(c, plan, nil)
	done := make(chan struct{})
	go func() { defer close(done); sess.Run(ctx) }()
	var last int64 = -1
	stable := 0
	for i := 0; i < 200 && stable < 4; i++ { // at most 20 s
		time.Sleep(100 * time.Millisecond)
		w := sess.Snapshot().Written
		if w == last && w > 0 {
			stable++
		} else {
			stable = 0
		}
		last = w
	}
	cancel()
	<-done
	if stable < 4 {
		t.Fatalf("the client never blocked (wrote %d bytes)", last)
	}
	return last
}

// TestRelayBackpressure: with a server that does not read, a stream relay
// holds almost nothing, so the client blocks after about the socket
// buffers; a bounded relay absorbs its buffer first, and counts the pause.
func TestRelayBackpressure(t *testing.T) {
	small := flow.SocketOptions{SendBuffer: 32 << 10, ReceiveBuffer: 32 << 10}
	stall := flow.ReadSettings{Pause: flow.PauseSchedule{After: 0, For: time.Hour}}
	addr, _ := flowtest.StartTCPServer(t, stall, small)

	stream := startRelay(t, relay.Config{Name: "stream"}, "tcp://"+addr, small)
	streamWritten := pushUntilBlocked(t, stream.target(flow.TCP), small)
	_, streamPeak, _, streamPauses, _ := stream.buffers.snapshot()
	if streamPeak[flow.Up] > relay.StreamBufferSize || streamPauses[flow.Up] < 1 {
		// The stream relay writes from its reader: a write blocked by the
		// stalled server is a pause in reading, and it holds one read.
		t.Errorf("stream relay: peak buffered %d (want <= %d), paused reading %d times (want >= 1)",
			streamPeak[flow.Up], relay.StreamBufferSize, streamPauses[flow.Up])
	}

	const buffer = 8 << 20
	bounded := startRelay(t, relay.Config{Name: "bounded", Buffer: buffer}, "tcp://"+addr, small)
	boundedWritten := pushUntilBlocked(t, bounded.target(flow.TCP), small)
	_, peak, _, pauses, _ := bounded.buffers.snapshot()

	t.Logf("stream: client wrote %d bytes before blocking; bounded %d: %d (peak buffered %d)", streamWritten, buffer, boundedWritten, peak[flow.Up])
	if streamWritten > 4<<20 {
		t.Errorf("stream relay: the client wrote %d bytes before blocking, want well under 4 MiB", streamWritten)
	}
	if extra := boundedWritten - streamWritten; extra < buffer*3/4 || extra > buffer+4<<20 {
		t.Errorf("bounded relay absorbed %d bytes more than a stream relay, want about %d", extra, buffer)
	}
	if peak[flow.Up] < buffer-(256<<10) || peak[flow.Up] > buffer {
		t.Errorf("peak buffered %d, want near %d and never above", peak[flow.Up], buffer)
	}
	if pauses[flow.Up] < 1 {
		t.Errorf("paused reading %d times, want at least 1", pauses[flow.Up])
	}
}

// TestRelayUpstreamFailure: an upstream that is down, or that dies
// mid-run, closes the downstream connection with an error, counted on the
// upstream side; the relay then serves the next connection normally.
func TestRelayUpstreamFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// An upstream that reads 1 MiB, then drops the connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_, c, err := flow.AcceptTCP(nc, time.Second)
				if err != nil {
					nc.Close()
					return
				}
				buf := make([]byte, 64<<10)
				var got int
				for got < 1<<20 {
					n, _, err := c.Read(buf)
					got += n
					if err != nil {
						break
					}
				}
				nc.(*net.TCPConn).SetLinger(0)
				nc.Close()
			}()
		}
	}()
	// A port nobody listens on.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()

	for _, tc := range []struct {
		name, target string
		proto        flow.Protocol
	}{
		{"down/tcp", "tcp://" + deadAddr, flow.TCP},             // refused at dial, TCP downstream
		{"down/websocket", "tcp://" + deadAddr, flow.WebSocket}, // refused at dial, WebSocket downstream
		{"dies/tcp", "tcp://" + ln.Addr().String(), flow.TCP},   // reset mid-run
		{"dies/websocket", "tcp://" + ln.Addr().String(), flow.WebSocket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rl := startRelay(t, relay.Config{Name: "r"}, tc.target, flow.SocketOptions{})
			c, err := dialTarget(ctx, rl.target(tc.proto), flow.Hello{PayloadSize: 64 << 10, TotalBytes: 8 << 20}, flow.SocketOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, cerr := flow.NewSession(c, flowtest.ClientPlan(flow.Up, 8<<20), nil).Run(ctx)
			if cerr == nil {
				t.Fatal("client: no error, want the relay to close with an error")
			}
			rr := <-rl.results
			_, _, _, _, failures := rl.buffers.snapshot()
			if rr.err == nil || failures[relay.Upstream] != 1 || failures[relay.Downstream] != 0 {
				t.Errorf("relay: err %v, failures %v; want an error counted once on the upstream side", rr.err, failures)
			}
			if rr.stats.Up.Written > rr.stats.Up.Read {
				t.Errorf("relay wrote %d bytes upstream but read only %d", rr.stats.Up.Written, rr.stats.Up.Read)
			}
			t.Logf("client: %v; relay: %v", cerr, rr.err)
		})
	}

	// The relay keeps serving: same relay, new connection, healthy upstream.
	addr, results := flowtest.StartTCPServer(t, flow.ReadSettings{}, flow.SocketOptions{})
	healthy := startRelay(t, relay.Config{Name: "r"}, "tcp://"+addr, flow.SocketOptions{})
	for i := range 2 {
		c, err := dialTarget(ctx, healthy.target(flow.TCP), flow.Hello{PayloadSize: 1 << 10, TotalBytes: 1 << 20}, flow.SocketOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := flow.NewSession(c, flowtest.ClientPlan(flow.Up, 1<<20), nil).Run(ctx); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if res := <-results; res.Err != nil || res.Snap.Read != 1<<20 {
			t.Fatalf("server: %v, read %d", res.Err, res.Snap.Read)
		}
		if rr := <-healthy.results; rr.err != nil {
			t.Fatalf("relay: %v", rr.err)
		}
	}
	_ = errors.Is
}
