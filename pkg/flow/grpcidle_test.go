package flow_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// TestGRPCIdleCountsMessageInTransit: grpc-go hands a server a message
// only when the whole of it has arrived, so a large message on a slow path
// is minutes of bytes arriving with no Recv returning. The idle watch
// counts them as activity (the connection's tap sees each DATA frame):
// a 1 MiB message through a path of about 330 kB/s, 3 s in transit,
// under an idle timeout of 500 ms, completes.
func TestGRPCIdleCountsMessageInTransit(t *testing.T) {
	const size, total = 1 << 20, 1 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan error, 4)
	srv := flow.NewGRPCServer(flow.GRPCServerOptions{HelloTimeout: 5 * time.Second, Base: ctx, Buffered: &flow.StreamBuffer{}},
		func(ctx context.Context, h *flow.Hello, c flow.Conn, _ string) {
			plan := flowtest.ServerPlan(h, flow.ReadSettings{})
			plan.IdleTimeout = 500 * time.Millisecond
			_, err := flow.NewSession(c, plan, nil).Run(ctx)
			results <- err
		})
	go srv.Serve(ln)
	defer func() {
		stop, cancelStop := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancelStop()
		srv.Stop(stop)
	}()

	slow := slowPath(t, ln.Addr().String(), 8<<10, 25*time.Millisecond)
	c, err := flowtest.Dial(t, ctx, flow.Target{Protocol: flow.GRPC, Addr: slow},
		flow.Hello{Direction: flow.Up, PayloadSize: size, TotalBytes: total}, flow.SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	snap, err := flow.NewSession(c, flow.Plan{Initiator: true, Write: &flow.WritePlan{Payload: make([]byte, size), TotalBytes: total}}, nil).Run(ctx)
	took := time.Since(began)
	if err != nil || snap.Acked != total {
		t.Errorf("client: err %v, acked %d, want nil and %d", err, snap.Acked, total)
	}
	select {
	case err := <-results:
		if err != nil {
			t.Errorf("server: %v (reason %s), want a clean end", err, flow.ErrorReason(err))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server session not ended")
	}
	if took < 2*time.Second {
		t.Errorf("the run took %s: the path was not slow enough to test anything", took)
	}
}

// slowPath forwards connections to addr, the client's bytes in pieces of
// chunk with a pause after each, the server's at once; it returns its
// address.
func slowPath(t *testing.T, addr string, chunk int, pause time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", addr)
			if err != nil {
				down.Close()
				continue
			}
			t.Cleanup(func() { down.Close(); up.Close() })
			go func() { io.Copy(down, up); down.Close() }()
			go func() {
				buf := make([]byte, chunk)
				for {
					n, err := down.Read(buf)
					if n > 0 {
						if _, werr := up.Write(buf[:n]); werr != nil {
							return
						}
						time.Sleep(pause)
					}
					if err != nil {
						if errors.Is(err, io.EOF) {
							up.(*net.TCPConn).CloseWrite()
						}
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}
