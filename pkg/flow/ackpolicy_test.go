package flow_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// pathAcks is a writer's observer: the acks, the most bytes in the pipe
// seen when one arrived, and the path the server echoed.
type pathAcks struct {
	flow.Nop
	mu       sync.Mutex
	acks     int
	written  atomic.Int64
	acked    int64
	maxAge   int64 // the most written-acked when an ack arrived
	via      []string
	seenFrom string
	viaCalls int
}

func (p *pathAcks) Open(flow.ConnInfo) flow.ConnObserver { return p }
func (p *pathAcks) Wrote(n int, _ time.Duration, _ bool) { p.written.Add(int64(n)) }
func (p *pathAcks) Acked(d int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.acks++
	p.maxAge = max(p.maxAge, p.written.Load()-p.acked)
	p.acked += d
}
func (p *pathAcks) Path(via []string, seenFrom string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.via, p.seenFrom, p.viaCalls = via, seenFrom, p.viaCalls+1
}

// echoServer is a TCP test server whose sessions echo via in their first
// ack, as bp-server echoes the hello's, and the address they see the
// connection from (the socket's remote address).
func echoServer(t *testing.T, via []string) string { return pathServer(t, via, true) }

// pathServer is echoServer, saying the address only when seen is set (a
// server from before seen_from does not).
func pathServer(t *testing.T, via []string, seen bool) string {
	return flowtest.ServeTCP(t, flow.SocketOptions{}, time.Second, func(ctx context.Context, h *flow.Hello, c flow.Conn, err error) {
		if err != nil {
			return
		}
		s := flow.NewSession(c, flowtest.ServerPlan(h, flow.ReadSettings{}), nil)
		if via != nil || h.Via != nil {
			from := ""
			if seen {
				from = c.NetConn().RemoteAddr().String()
			}
			s.EchoPath(via, from)
		}
		s.Run(ctx)
	})
}

// TestAckPolicy: at full speed the reader acks every AckBytes (at most one
// ack per MinAckGap), so no ack is much older than that when it arrives;
// the first ack echoes the via list, once; a server that does not echo
// says nothing about the path.
func TestAckPolicy(t *testing.T) {
	cases := []struct {
		name    string
		echo    []string // the server echoes this (nil: no echo)
		noSeen  bool     // the server does not say where it sees the connection from
		total   int64
		wantVia []string // nil: no Path call
	}{
		// Direct to a server that echoes: an empty path, the bytes acked often.
		{"direct", []string{}, false, 256 << 20, []string{}},
		// Behind two relays, as the server saw them in the hello.
		{"relays", []string{"r1", "r2"}, false, 64 << 20, []string{"r1", "r2"}},
		// A server from before seen_from: the path, no address.
		{"via only", []string{}, true, 64 << 20, []string{}},
		// An older server: no via in its acks, the path stays unknown.
		{"no echo", nil, false, 64 << 20, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			addr := pathServer(t, tc.echo, !tc.noSeen)
			c, err := flow.DialTCP(ctx, addr, flow.Hello{RunID: "t", PayloadSize: 64 << 10, TotalBytes: tc.total}, flow.SocketOptions{})
			if err != nil {
				t.Fatal(err)
			}
			obs := &pathAcks{}
			began := time.Now()
			if _, err := flow.NewSession(c, flowtest.ClientPlan(flow.Up, tc.total), obs).Run(ctx); err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(began)
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if !slices.Equal(obs.via, tc.wantVia) || (tc.wantVia == nil) != (obs.viaCalls == 0) || obs.viaCalls > 1 {
				t.Errorf("path %q in %d call(s), want %q once (nil: never)", obs.via, obs.viaCalls, tc.wantVia)
			}
			// Direct on loopback the server sees this client's own end.
			want := c.NetConn().LocalAddr().String()
			if tc.wantVia == nil || tc.noSeen {
				want = ""
			}
			if obs.seenFrom != want {
				t.Errorf("seen from %q, want %q (this client's local address, or not said)", obs.seenFrom, want)
			}
			// At least one ack per 16 MiB (time alone gives about one per
			// 100 ms, which is a GB at loopback speed; on a loaded
			// machine the acker is not always scheduled at once, so not
			// one per MiB), at most one per millisecond and one per tick.
			if lo, hi := int(tc.total/(16<<20)), int(elapsed/flow.MinAckGap+elapsed/flow.DefaultAckInterval)+3; obs.acks < lo || obs.acks > hi {
				t.Errorf("%d acks in %s for %d bytes, want between %d and %d", obs.acks, elapsed, tc.total, lo, hi)
			}
			t.Logf("%d acks in %s, an ack at most %d bytes behind the writer", obs.acks, elapsed, obs.maxAge)
		})
	}
}

// TestFirstAckBeforePayload: the first ack comes about one ack interval
// after the hello even when no payload was read, and echoes the via list
// (docs/PROTOCOL.md): the writer learns that the back channel works and
// its path before a byte arrives.
func TestFirstAckBeforePayload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := echoServer(t, []string{"r1"})
	c, err := flow.DialTCP(ctx, addr, flow.Hello{RunID: "t", PayloadSize: 1 << 10}, flow.SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	began := time.Now()
	c.NetConn().SetReadDeadline(began.Add(5 * time.Second)) // bounded if no ack comes
	n, ctl, err := c.Read(make([]byte, 64))
	if err != nil || n != 0 {
		t.Fatalf("read %d payload bytes, %v; want a control message", n, err)
	}
	if ctl.Type != flow.Ack || ctl.Bytes != 0 || !slices.Equal(ctl.Via, []string{"r1"}) || ctl.SeenFrom != c.NetConn().LocalAddr().String() {
		t.Errorf("first message %+v, want an ack of 0 bytes with via [r1], seen from %s", ctl, c.NetConn().LocalAddr())
	}
	if waited := time.Since(began); waited < flow.DefaultAckInterval/2 {
		t.Errorf("first ack after %s, want about one ack interval (%s)", waited, flow.DefaultAckInterval)
	}
}
