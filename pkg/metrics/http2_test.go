package metrics_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// The HTTP/2 side of the tests' harness: net/http's server with h2c by
// prior knowledge on ln, each stream handed to serve as bp-server does
// (flow.AcceptHTTP2), and a dial that opens a connection and one stream on
// it. The connection is closed at the test's end.

// h2SocketKey is the context key of a request's connection.
type h2SocketKey struct{}

// serveHTTP2 serves streams on ln until the test ends; serve gets each
// one, or a nil Conn and the error that refused it.
func serveHTTP2(t *testing.T, ln net.Listener, serve func(*flow.Hello, flow.Conn, error)) {
	t.Helper()
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: protos,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, h2SocketKey{}, c) },
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sock, _ := r.Context().Value(h2SocketKey{}).(net.Conn)
			h, c, err := flow.AcceptHTTP2(w, r, sock, 5*time.Second)
			serve(h, c, err)
		})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// dialHTTP2 opens a connection to addr and one stream on it.
func dialHTTP2(t *testing.T, ctx context.Context, addr string, hello flow.Hello, opts flow.SocketOptions) (flow.Conn, error) {
	t.Helper()
	target, err := flow.ParseTarget("h2c://" + addr + "/h2")
	if err != nil {
		return nil, err
	}
	mux, err := flow.DialMux(ctx, target, opts)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { mux.Close() })
	return mux.OpenStream(ctx, hello)
}

// TestSocketMetricsPausedStream is TestSocketMetricsPausedReader over
// HTTP/2: the paused reader shuts the stream's window, and the client's
// writes wait on it (its frame-level view), while TCP's window stays open:
// the server's HTTP/2 layer goes on reading the socket into the stream's
// buffer, so the kernel sees a reader that keeps up.
func TestSocketMetricsPausedStream(t *testing.T) {
	requireSockstat(t, sockstat.FieldPeerWindow|sockstat.FieldOwnWindow)
	const pauseAfter, pauseFor = 500 * time.Millisecond, 2 * time.Second
	client, server := newSide(t, 50*time.Millisecond), newSide(t, 50*time.Millisecond)
	var sc flow.StreamConn
	var streamWindowShut bool
	watch := func() {
		for deadline := time.Now().Add(pauseAfter + pauseFor); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
			if sc != nil && sc.StreamLayer().SendStreamWindow <= 0 {
				streamWindowShut = true
			}
		}
	}
	read := flow.ReadSettings{Pause: flow.PauseSchedule{After: pauseAfter, For: pauseFor}}
	runPair(t, flow.HTTP2, client, server, pairRun{read: read, buffer: testBuffer, writeFor: pauseAfter + pauseFor + 300*time.Millisecond,
		during: watch, dialled: func(c flow.Conn) { sc = c.(flow.StreamConn) }})

	st := sc.StreamLayer()
	t.Logf("stream layer after the run: %+v", st)
	minimum := time.Duration(0.4 * float64(pauseFor))
	if !streamWindowShut || st.StreamClosedAt.IsZero() || st.BlockedStream < minimum || st.Source != "frames" {
		t.Errorf("stream window shut %v (first at %v), writes blocked on it %v: want shut, and at least %v (frames)", streamWindowShut, st.StreamClosedAt, st.BlockedStream, minimum)
	}
	if st.BlockedTCP > minimum/2 {
		t.Errorf("writes blocked on TCP %v: want next to nothing beside the stream window's %v", st.BlockedTCP, st.BlockedStream)
	}
	// The kernel's view: TCP's windows stayed open, but for moments while
	// loopback outruns the server's HTTP/2 reader on a busy machine (up
	// to a quarter of the pause seen beside the other tests; a paused TCP
	// reader shows most of it).
	for _, c := range []struct {
		s    *side
		name string
	}{
		{client, "bp_socket_peer_window_zero_seconds_total"},
		{server, "bp_socket_own_window_zero_seconds_total"},
	} {
		if v, ok := c.s.value(t, c.name, flow.HTTP2); !ok || v > 0.25*pauseFor.Seconds() {
			t.Errorf("%s = %v (present %v): want TCP's window open through the pause", c.name, v, ok)
		}
	}
	if v, _ := client.value(t, "bp_bytes_written_total", flow.HTTP2); v < 1<<20 {
		t.Errorf("bp_bytes_written_total = %v: the run did not run", v)
	}
}
