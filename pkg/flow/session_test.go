package flow_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// serverResult is what the test server's session ended with.
type serverResult struct {
	hello *flow.Hello
	snap  flow.Snapshot
	err   error
}

// serverPlan is what bp-server does with a hello: read when the client
// writes, write what the hello asks for when the client reads.
func serverPlan(h *flow.Hello, read flow.ReadSettings) flow.Plan {
	p := flow.Plan{Read: read, PeerWrites: h == nil || h.Direction.ClientWrites()}
	if h != nil && h.Direction.ServerWrites() {
		p.Write = &flow.WritePlan{Payload: bytes.Repeat([]byte{'x'}, max(h.PayloadSize, 1)), TotalBytes: h.TotalBytes, Duration: h.Duration(), Rate: h.Rate}
	}
	return p
}

// startTCPServer serves one flow session per accepted connection on
// 127.0.0.1:0 and sends each result on the returned channel.
func startTCPServer(t *testing.T, read flow.ReadSettings) (string, <-chan serverResult) {
	return startTCPServerOpts(t, read, flow.SocketOptions{})
}

// startTCPServerOpts is startTCPServer with socket options.
func startTCPServerOpts(t *testing.T, read flow.ReadSettings, opts flow.SocketOptions) (string, <-chan serverResult) {
	t.Helper()
	results := make(chan serverResult, 16)
	addr := serveTCP(t, opts, time.Second, func(ctx context.Context, h *flow.Hello, c flow.Conn, err error) {
		if err != nil {
			send(ctx, results, serverResult{err: err})
			return
		}
		snap, err := flow.NewSession(c, serverPlan(h, read), nil).Run(ctx)
		send(ctx, results, serverResult{hello: h, snap: snap, err: err})
	})
	return addr, results
}

func startWSServer(t *testing.T, read flow.ReadSettings) (string, <-chan serverResult) {
	t.Helper()
	results := make(chan serverResult, 16)
	up := flow.NewUpgrader()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, c, err := up.Accept(w, r)
		if err != nil {
			results <- serverResult{err: err}
			return
		}
		snap, err := flow.NewSession(c, serverPlan(h, read), nil).Run(context.Background())
		results <- serverResult{hello: h, snap: snap, err: err}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", results
}

func clientPlan(dir flow.Direction, total int64) flow.Plan {
	p := flow.Plan{Initiator: true, PeerWrites: dir.ServerWrites()}
	if dir.ClientWrites() {
		p.Write = &flow.WritePlan{Payload: bytes.Repeat([]byte{'y'}, 64<<10), TotalBytes: total}
	}
	return p
}

func TestSessionExactBytes(t *testing.T) {
	const total = 50<<20 + 123 // not a multiple of the payload size
	for _, proto := range []flow.Protocol{flow.TCP, flow.WebSocket} {
		for _, dir := range []flow.Direction{flow.Up, flow.Down, flow.Both} {
			t.Run(string(proto)+"/"+string(dir), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				hello := flow.Hello{RunID: "t", Direction: dir, PayloadSize: 32 << 10, TotalBytes: total}
				var c flow.Conn
				var results <-chan serverResult
				var err error
				if proto == flow.TCP {
					var addr string
					addr, results = startTCPServer(t, flow.ReadSettings{})
					c, err = flow.DialTCP(ctx, addr, hello, flow.SocketOptions{})
				} else {
					var url string
					url, results = startWSServer(t, flow.ReadSettings{})
					c, err = flow.DialWebSocket(ctx, url, hello, flow.SocketOptions{}, nil)
				}
				if err != nil {
					t.Fatal(err)
				}
				snap, err := flow.NewSession(c, clientPlan(dir, total), nil).Run(ctx)
				if err != nil {
					res := <-results
					t.Fatalf("client: %v (server: %v %+v)", err, res.err, res.snap)
				}
				res := <-results
				if res.err != nil {
					t.Fatalf("server: %v", res.err)
				}
				if dir.ClientWrites() {
					if snap.Written != total || res.snap.Read != total || snap.Acked != total {
						t.Errorf("up: client wrote %d, acked %d; server read %d; want %d", snap.Written, snap.Acked, res.snap.Read, total)
					}
				}
				if dir.ServerWrites() {
					if res.snap.Written != total || snap.Read != total || res.snap.Acked != total {
						t.Errorf("down: server wrote %d, acked %d; client read %d; want %d", res.snap.Written, res.snap.Acked, snap.Read, total)
					}
				}
			})
		}
	}
}

func TestHellolessTCP(t *testing.T) {
	addr, results := startTCPServer(t, flow.ReadSettings{})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("hello, raw world\n"), 1000)
	if _, err := nc.Write(payload); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	res := <-results
	if res.err != nil || res.hello != nil || res.snap.Read != int64(len(payload)) {
		t.Fatalf("got hello %v, read %d, err %v; want no hello, %d bytes", res.hello, res.snap.Read, res.err, len(payload))
	}
}
