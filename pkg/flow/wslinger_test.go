package flow_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// wsSink serves /ws with a reading session per connection, as bp-server
// does, with a 64 KiB message limit; ctx ends the sessions (shutdown). It
// returns the ws:// URL and each session's run time.
func wsSink(t *testing.T, ctx context.Context) (string, <-chan time.Duration) {
	t.Helper()
	up := flow.NewUpgrader()
	up.MaxMessageSize = 64 << 10
	ran := make(chan time.Duration, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, c, err := up.Accept(w, r)
		if err != nil {
			return
		}
		start := time.Now()
		flow.NewSession(c, flow.Plan{PeerWrites: h == nil || h.Direction.ClientWrites()}, nil).Run(ctx)
		ran <- time.Since(start)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", ran
}

// floodingClient is a gorilla/websocket client that says hello, then sends
// binary messages of size bytes (after first sending extra, when set) until
// its writes fail, while it reads; it returns the error its reader ended
// with. A write error (the server reset the connection) ends the client
// at once, as a browser's does. It never stops sending on its own: it is the peer that keeps
// sending past the moment the server closes.
func floodingClient(t *testing.T, url string, size int, extra func(*websocket.Conn) error) error {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	hello, _ := flow.EncodeHello(flow.Hello{RunID: "flood", PayloadSize: size})
	if err := ws.WriteMessage(websocket.TextMessage, hello); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		msg := make([]byte, size)
		for i := 0; ; i++ {
			if i == 4 && extra != nil {
				if extra(ws) != nil {
					return
				}
			}
			ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if ws.WriteMessage(websocket.BinaryMessage, msg) != nil {
				// As a browser does: a connection that failed under a
				// write is gone, close frame read or not (1006).
				ws.NetConn().Close()
				return
			}
		}
	}()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var rerr error
	for rerr == nil {
		_, _, rerr = ws.ReadMessage()
	}
	ws.NetConn().Close() // stops the writer
	wg.Wait()
	return rerr
}

// TestWebSocketLingeringClose (issue 13, defect 4): a peer that keeps
// sending when the server closes with a code still reads that code and its
// reason (not 1006: the server lingers, reading and discarding, so its
// close does not reset the connection under the peer's unread data).
func TestWebSocketLingeringClose(t *testing.T) {
	for _, tc := range []struct {
		name       string
		size       int // of each binary message
		extra      func(*websocket.Conn) error
		shutdown   bool
		wantCode   int
		wantReason string
	}{
		{"too large 1009", 128 << 10, nil, false, websocket.CloseMessageTooBig, "too large"},
		{"unsupported data 1003", 16 << 10, func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.TextMessage, []byte("no control message"))
		}, false, websocket.CloseUnsupportedData, "no control message"},
		{"shutdown 1001", 16 << 10, nil, true, websocket.CloseGoingAway, "shutting down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			url, ran := wsSink(t, ctx)
			if tc.shutdown {
				time.AfterFunc(300*time.Millisecond, cancel)
			}
			err := floodingClient(t, url, tc.size, tc.extra)
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != tc.wantCode || !strings.Contains(ce.Text, tc.wantReason) {
				t.Fatalf("client read %v, want close %d with a reason containing %q", err, tc.wantCode, tc.wantReason)
			}
			if d := <-ran; d > 5*time.Second {
				t.Errorf("the server's session took %s to end, want within its linger bound", d)
			}
		})
	}
}

// TestWebSocketLingerBounded: a peer that never reads and never closes
// cannot hold a closing connection beyond the linger bound (a shutdown
// here), and nothing is left behind (goleak, TestMain).
func TestWebSocketLingerBounded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	url, ran := wsSink(t, ctx)
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	hello, _ := flow.EncodeHello(flow.Hello{RunID: "mute"})
	ws.WriteMessage(websocket.TextMessage, hello)
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case d := <-ran:
		if d > 5*time.Second {
			t.Errorf("session ended after %s", d)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("the session did not end within 6 s of the shutdown")
	}
}
