package flow_test

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

func TestSessionExactBytes(t *testing.T) {
	const total = 50<<20 + 123 // not a multiple of the payload size
	for _, proto := range []flow.Protocol{flow.TCP, flow.WebSocket} {
		for _, dir := range []flow.Direction{flow.Up, flow.Down, flow.Both} {
			t.Run(string(proto)+"/"+string(dir), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				hello := flow.Hello{RunID: "t", Direction: dir, PayloadSize: 32 << 10, TotalBytes: total}
				var c flow.Conn
				var results <-chan flowtest.ServerResult
				var err error
				if proto == flow.TCP {
					var addr string
					addr, results = flowtest.StartTCPServer(t, flow.ReadSettings{}, flow.SocketOptions{})
					c, err = flow.DialTCP(ctx, addr, hello, flow.SocketOptions{})
				} else {
					var url string
					url, results = flowtest.StartWSServer(t, flow.ReadSettings{})
					c, err = flow.DialWebSocket(ctx, url, hello, flow.SocketOptions{}, nil)
				}
				if err != nil {
					t.Fatal(err)
				}
				snap, err := flow.NewSession(c, flowtest.ClientPlan(dir, total), nil).Run(ctx)
				if err != nil {
					res := <-results
					t.Fatalf("client: %v (server: %v %+v)", err, res.Err, res.Snap)
				}
				res := <-results
				if res.Err != nil {
					t.Fatalf("server: %v", res.Err)
				}
				if dir.ClientWrites() {
					if snap.Written != total || res.Snap.Read != total || snap.Acked != total {
						t.Errorf("up: client wrote %d, acked %d; server read %d; want %d", snap.Written, snap.Acked, res.Snap.Read, total)
					}
				}
				if dir.ServerWrites() {
					if res.Snap.Written != total || snap.Read != total || res.Snap.Acked != total {
						t.Errorf("down: server wrote %d, acked %d; client read %d; want %d", res.Snap.Written, res.Snap.Acked, snap.Read, total)
					}
				}
			})
		}
	}
}

func TestHellolessTCP(t *testing.T) {
	addr, results := flowtest.StartTCPServer(t, flow.ReadSettings{}, flow.SocketOptions{})
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
	if res.Err != nil || res.Hello != nil || res.Snap.Read != int64(len(payload)) {
		t.Fatalf("got hello %v, read %d, err %v; want no hello, %d bytes", res.Hello, res.Snap.Read, res.Err, len(payload))
	}
}
