package flow

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// TestDialWSHandshakeBound checks what bounds a WebSocket handshake with a
// server that accepts the connection and never answers the upgrade: the
// caller's deadline when it set one (bp-relay's --dial-timeout), longer
// than the package's own timeout, else that timeout.
func TestDialWSHandshakeBound(t *testing.T) {
	ln := holdingListener(t)
	old := wsHandshakeTimeout
	wsHandshakeTimeout = 300 * time.Millisecond
	defer func() { wsHandshakeTimeout = old }()
	url := "ws://" + ln.Addr().String() + "/ws"
	for _, tc := range []struct {
		name     string
		deadline time.Duration // 0: none
		min, max time.Duration
	}{
		{"no deadline: the package's timeout", 0, 250 * time.Millisecond, 1200 * time.Millisecond},
		{"the caller's deadline, past the package's timeout", 1500 * time.Millisecond, 1450 * time.Millisecond, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			began := time.Now()
			c, err := DialWebSocket(ctx, url, Hello{Type: "hello", Version: ProtocolVersion, Direction: Up}, SocketOptions{}, nil)
			took := time.Since(began)
			if err == nil {
				c.Close()
				t.Fatal("dial succeeded with a server that never answers")
			}
			if got := ErrorReason(err); got != "timeout" {
				t.Errorf("reason %s (%v), want timeout", got, err)
			}
			if took < tc.min || took > tc.max {
				t.Errorf("gave up after %s (%v), want between %s and %s", took, err, tc.min, tc.max)
			}
		})
	}
}

// holdingListener is a loopback listener that accepts every connection and
// holds it open, never reading or writing, until the test ends.
func holdingListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	return ln
}
