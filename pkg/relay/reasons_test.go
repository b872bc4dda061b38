package relay_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/relay"
)

// TestRelayHelloTooLargeToForward (issue 13, defect 6): a hello that fits
// but no longer does with the relay's name in Via is the downstream peer's
// (too_large, close 1009 with the reason), not an upstream failure: the
// upstream is never dialled.
func TestRelayHelloTooLargeToForward(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	rl := startRelay(t, relay.Config{Name: "a-relay-with-a-long-name"}, "tcp://"+deadAddr, flow.SocketOptions{})

	// A hello a few bytes under the limit.
	h := flow.Hello{RunID: "big", Via: []string{""}}
	for {
		b, _ := flow.EncodeHello(h)
		if len(b)+len(flow.TCPHelloPrefix)+1 >= flow.MaxHelloSize-4 {
			break
		}
		h.Via[0] += "x"
	}
	b, err := flow.EncodeHello(h)
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial(rl.wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, b)
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, rerr := ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(rerr, &ce) || ce.Code != websocket.CloseMessageTooBig || !strings.Contains(ce.Text, "hello") {
		t.Errorf("client read %v, want close 1009 about the hello", rerr)
	}
	var rr relayResult
	select {
	case rr = <-rl.results:
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not end the connection")
	}
	_, _, _, _, failures := rl.buffers.snapshot()
	if got := flow.ErrorReason(rr.err); got != "too_large" || failures[relay.Upstream] != 0 || failures[relay.Downstream] != 1 {
		t.Errorf("relay: reason %s (%v), failures %v; want too_large, counted once downstream", got, rr.err, failures)
	}
}
