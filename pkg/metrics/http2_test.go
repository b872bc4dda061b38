package metrics_test

import (
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

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
	// Writes at full speed before and after the pause may wait on TCP
	// (the server's HTTP/2 reader is slower than loopback: 0.47 s of a
	// run beside the whole suite); the pause's wait is the stream
	// window's, so TCP's stays well below it.
	if st.BlockedTCP > st.BlockedStream/3 {
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
