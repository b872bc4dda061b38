package relay_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/relay"
)

// TestRelaySpliceExactBytes: a stream relay between two framed TCP
// connections splices large frames (Linux) and copies small ones, acks
// and fins; whatever the mix, each side's counts match the peers' to the
// byte. Payloads: a read's worth, less than one (spliced), more than one
// (a frame over several pipe fills) and small (copied); "both" puts acks
// between the data frames of each direction.
func TestRelaySpliceExactBytes(t *testing.T) {
	const total = 6<<20 + 123
	for _, size := range []int{64 << 10, 40 << 10, 1<<20 + 3, 1 << 10} {
		for _, dir := range []flow.Direction{flow.Up, flow.Down, flow.Both} {
			t.Run(fmt.Sprintf("%d/%s", size, dir), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				addr, results := flowtest.StartTCPServer(t, flow.ReadSettings{}, flow.SocketOptions{})
				rl := startRelay(t, relay.Config{Name: "r1"}, "tcp://"+addr, flow.SocketOptions{})
				c, err := dialTarget(ctx, rl.target(flow.TCP), flow.Hello{RunID: "t", Direction: dir, PayloadSize: size, TotalBytes: total}, flow.SocketOptions{})
				if err != nil {
					t.Fatal(err)
				}
				plan := flowtest.ClientPlan(dir, total)
				if plan.Write != nil {
					plan.Write.Payload = flowtest.Payload(size)
				}
				snap, err := flow.NewSession(c, plan, nil).Run(ctx)
				if err != nil {
					t.Fatalf("client: %v", err)
				}
				res := <-results
				rr := <-rl.results
				if res.Err != nil || rr.err != nil {
					t.Fatalf("server: %v; relay: %v", res.Err, rr.err)
				}
				check := func(name string, st relay.PipeStats, wrote, acked, read int64) {
					if wrote != total || acked != total || st.Read != total || st.Written != total || read != total {
						t.Errorf("%s: writer wrote %d acked %d; relay read %d wrote %d; reader read %d; want %d",
							name, wrote, acked, st.Read, st.Written, read, total)
					}
					spliced := st.Spliced > 0
					if want := size >= 16<<10 && runtime.GOOS == "linux"; spliced != want || st.Spliced > st.Read {
						t.Errorf("%s: %d of %d bytes spliced; want some (%v) and at most all", name, st.Spliced, st.Read, want)
					}
					if size >= 64<<10 && runtime.GOOS == "linux" && st.Spliced < total*9/10 {
						t.Errorf("%s: only %d of %d bytes spliced, want nearly all", name, st.Spliced, st.Read)
					}
				}
				if dir.ClientWrites() {
					check("up", rr.stats.Up, snap.Written, snap.Acked, res.Snap.Read)
				}
				if dir.ServerWrites() {
					check("down", rr.stats.Down, res.Snap.Written, res.Snap.Acked, snap.Read)
				}
				buffered, _, _, _, failures := rl.buffers.snapshot()
				if buffered[flow.Up] != 0 || buffered[flow.Down] != 0 || len(failures) != 0 {
					t.Errorf("after the run: buffered %v, failures %v; want all zero", buffered, failures)
				}
			})
		}
	}
}

// TestRelaySpliceBackpressure: with a server that stops reading, the
// spliced stream relay stops too: the client blocks after about the socket
// buffers, the relay holds at most one read (the pipe), its reading pause
// is counted, and the upstream write it is stuck in is seen blocked, as
// the copying relay's would be.
func TestRelaySpliceBackpressure(t *testing.T) {
	small := flow.SocketOptions{SendBuffer: 32 << 10, ReceiveBuffer: 32 << 10}
	// The server pauses for 4 s, long enough for the client to block, then
	// reads again, so the relay, stuck in its write meanwhile as stream
	// mode must be, sees that the client left and reports.
	stall := flow.ReadSettings{Pause: flow.PauseSchedule{After: 0, For: 4 * time.Second}}
	addr, _ := flowtest.StartTCPServer(t, stall, small)
	obs := &blockedObserver{}
	// The relay's sockets take more than one Fill, so that the Fill's
	// bound, not the socket's, is what holds the pipe to one Fill.
	roomy := flow.SocketOptions{SendBuffer: 32 << 10, ReceiveBuffer: 256 << 10}
	rl := startRelay(t, relay.Config{Name: "stream", Observer: obs}, "tcp://"+addr, roomy)
	written := pushSizeUntilBlocked(t, rl.target(flow.TCP), small, 64<<10)
	_, peak, _, pauses, _ := rl.buffers.snapshot()
	rr := <-rl.results
	t.Logf("client wrote %d bytes before blocking; relay read %d, spliced %d, wrote %d; peak buffered %d; longest upstream write %s",
		written, rr.stats.Up.Read, rr.stats.Up.Spliced, rr.stats.Up.Written, peak[flow.Up], obs.longest())
	if written > 4<<20 {
		t.Errorf("the client wrote %d bytes before blocking, want well under 4 MiB", written)
	}
	if peak[flow.Up] > relay.StreamBufferSize || pauses[flow.Up] < 1 {
		t.Errorf("peak buffered %d (want <= %d), paused reading %d times (want >= 1)", peak[flow.Up], relay.StreamBufferSize, pauses[flow.Up])
	}
	if rr.stats.Up.Written > rr.stats.Up.Read || rr.stats.Up.Read-rr.stats.Up.Written > relay.StreamBufferSize {
		t.Errorf("relay read %d, wrote %d: want at most one read's worth between them", rr.stats.Up.Read, rr.stats.Up.Written)
	}
	if runtime.GOOS == "linux" && rr.stats.Up.Spliced < rr.stats.Up.Read/2 {
		t.Errorf("spliced %d of %d bytes: the test did not take the splice path", rr.stats.Up.Spliced, rr.stats.Up.Read)
	}
	// A spliced write holds one Fill: at most 48 KiB of payload
	// (spliceFill), less than a 64 KiB read.
	if runtime.GOOS == "linux" && peak[flow.Up] > relay.SpliceFill {
		t.Errorf("peak buffered %d with splice, want <= %d (one Fill)", peak[flow.Up], relay.SpliceFill)
	}
	// pushSizeUntilBlocked saw the client stuck for 400 ms: the relay's
	// last upstream write was blocked at least that long.
	if obs.longest() < 300*time.Millisecond {
		t.Errorf("longest upstream write blocked %s, want >= 300ms", obs.longest())
	}
}

// blockedObserver keeps the longest blocked payload write of the
// connections that write payload (upstream, in an upload).
type blockedObserver struct {
	mu  sync.Mutex
	max time.Duration
}

func (b *blockedObserver) Open(info flow.ConnInfo) flow.ConnObserver {
	if !info.Writes {
		return flow.Nop{}.Open(info)
	}
	return blockedConn{flow.Nop{}.Open(info), b}
}

func (b *blockedObserver) longest() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.max
}

// blockedConn records Wrote; every other event goes to flow.Nop.
type blockedConn struct {
	flow.ConnObserver
	b *blockedObserver
}

func (c blockedConn) Wrote(n int, blocked time.Duration, stalled bool) {
	c.b.mu.Lock()
	c.b.max = max(c.b.max, blocked)
	c.b.mu.Unlock()
}
