package flow_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// TestMain fails the package when a test leaves a goroutine behind: every
// session, relay and fault path must end what it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestIdleTimeoutSparesPauses: a reader paused for longer than the idle
// timeout is not idle (it is slow on purpose), while a peer that sends
// nothing at all is, and ends with reason idle.
func TestIdleTimeoutSparesPauses(t *testing.T) {
	ln, err := flow.ListenTCP(context.Background(), "127.0.0.1:0", flow.SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serve := func(plan flow.Plan) chan error {
		res := make(chan error, 1)
		go func() {
			nc, err := ln.Accept()
			if err != nil {
				res <- err
				return
			}
			h, c, err := flow.AcceptTCP(nc, time.Second)
			if err != nil {
				nc.Close()
				res <- err
				return
			}
			plan.PeerWrites = h == nil || h.Direction.ClientWrites()
			_, err = flow.NewSession(c, plan, nil).Run(context.Background())
			res <- err
		}()
		return res
	}

	// Paused 600 ms with an idle timeout of 200 ms: the run completes.
	res := serve(flow.Plan{IdleTimeout: 200 * time.Millisecond,
		Read: flow.ReadSettings{Pause: flow.PauseSchedule{After: 10 * time.Millisecond, For: 600 * time.Millisecond}}})
	const total = 256 << 10
	c, err := flow.DialTCP(context.Background(), ln.Addr().String(), flow.Hello{Direction: flow.Up, PayloadSize: 1024, TotalBytes: total}, flow.SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := flow.NewSession(c, flow.Plan{Initiator: true, Write: &flow.WritePlan{Payload: make([]byte, 1024), TotalBytes: total}}, nil).Run(context.Background())
	if err != nil || snap.Acked != total {
		t.Errorf("paused run: err %v, acked %d, want nil and %d", err, snap.Acked, total)
	}
	if err := <-res; err != nil {
		t.Errorf("paused run, server: %v, want a clean end", err)
	}

	// A client that says hello and then nothing: idle.
	res = serve(flow.Plan{IdleTimeout: 200 * time.Millisecond})
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("BP/1 {\"type\":\"hello\",\"version\":1}\n"))
	select {
	case err := <-res:
		if !errors.Is(err, flow.ErrIdle) || flow.ErrorReason(err) != "idle" {
			t.Errorf("silent client: %v (reason %s), want ErrIdle", err, flow.ErrorReason(err))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("silent client not ended within 5s")
	}
}

// TestControlWriteTimeout: a client that writes payload but never reads its
// acks cannot hold the server: once the acks fill the socket buffers, the
// ack write times out and the session ends with reason timeout.
func TestControlWriteTimeout(t *testing.T) {
	ln, err := flow.ListenTCP(context.Background(), "127.0.0.1:0", flow.SocketOptions{SendBuffer: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	res := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			res <- err
			return
		}
		_, c, err := flow.AcceptTCP(nc, time.Second)
		if err != nil {
			nc.Close()
			res <- err
			return
		}
		_, err = flow.NewSession(c, flow.Plan{PeerWrites: true, AckInterval: time.Millisecond, ControlWriteTimeout: 300 * time.Millisecond}, nil).Run(context.Background())
		res <- err
	}()
	// The client: small receive buffer, writes 1-byte frames, never reads.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024) })
	}}
	nc, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("BP/1 {\"type\":\"hello\",\"version\":1}\n"))
	frame := []byte{'D', 0, 0, 0, 1, 'x'}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-res:
			if flow.ErrorReason(err) != "timeout" || !bytes.Contains([]byte(err.Error()), []byte("did not read its acks")) {
				t.Errorf("server ended with %v (reason %s), want the ack write timeout", err, flow.ErrorReason(err))
			}
			return
		default:
		}
		nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		nc.Write(frame)
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the server still waits on its acks after 20s")
}
