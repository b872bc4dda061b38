package flow

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// errWriter fails every write.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("stream reset") }

// TestAckStreamCoalescesAndEnds: acks queued while nobody writes them
// collapse into the newest (they are cumulative), other messages keep
// their order within the bound, and Serve writes control frames, then
// returns once ended with the queue empty.
func TestAckStreamCoalescesAndEnds(t *testing.T) {
	a := NewAckStream()
	a.Send(Control{Type: Ack, Bytes: 0, Via: []string{}}) // the first ack's via echo is kept
	a.Send(Control{Type: Ack, Bytes: 10})
	a.Send(Control{Type: Ack, Bytes: 20})
	a.Send(Control{Type: Fin, Bytes: 5})
	a.Send(Control{Type: Ack, Bytes: 30})
	a.End()
	a.Send(Control{Type: Ack, Bytes: 40}) // after End: dropped
	var out bytes.Buffer
	flushes := 0
	if err := a.Serve(context.Background(), &out, func() error { flushes++; return nil }); err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, c := range []Control{{Type: Ack, Bytes: 0, Via: []string{}}, {Type: Ack, Bytes: 20}, {Type: Fin, Bytes: 5}, {Type: Ack, Bytes: 30}} {
		want = appendControlFrame(want, c)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("Serve wrote %q, want %q", out.Bytes(), want)
	}
	if flushes != 1 {
		t.Errorf("%d flushes for one batch, want 1", flushes)
	}
}

// TestAckStreamBounded: a queue nobody serves holds at most
// maxQueuedControls messages; after a failed write Send drops everything
// and never blocks, so the upload it serves goes on.
func TestAckStreamBounded(t *testing.T) {
	a := NewAckStream()
	for i := range 3 * maxQueuedControls {
		a.Send(Control{Type: Fin, Bytes: int64(i)})
	}
	if n := len(a.pending); n != maxQueuedControls {
		t.Errorf("%d messages queued, want the bound %d", n, maxQueuedControls)
	}
	if err := a.Serve(context.Background(), errWriter{}, func() error { return nil }); err == nil {
		t.Fatal("Serve to a failing writer returned no error")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			a.Send(Control{Type: Ack, Bytes: int64(i)})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Send blocked after the ack stream failed")
	}
	if n := len(a.pending); n != 0 {
		t.Errorf("%d messages queued after the stream failed, want 0", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := NewAckStream().Serve(ctx, &bytes.Buffer{}, func() error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Serve with its context ended: %v, want context.Canceled", err)
	}
}
