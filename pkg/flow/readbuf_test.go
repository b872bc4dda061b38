package flow

import "testing"

// TestReadBuffer: a reader starts small, reads at the full size as soon as
// a read fills the small buffer, and goes back to small after reads that
// stay small.
func TestReadBuffer(t *testing.T) {
	steps := []struct {
		read     int // bytes the read returned
		wantNext int // len(next()) after it
	}{
		{0, smallReadSize},                 // a control message
		{1024, smallReadSize},              // a slow connection's 1 KiB message
		{smallReadSize, DefaultReadSize},   // filled: more may be waiting
		{DefaultReadSize, DefaultReadSize}, // fast
		{100, DefaultReadSize},             // one small read is no reason to shrink
		{DefaultReadSize / 2, DefaultReadSize},
	}
	b := newReadBuffer(0)
	if got := len(b.next()); got != smallReadSize {
		t.Fatalf("new buffer: len %d, want %d", got, smallReadSize)
	}
	for i, s := range steps {
		b.used(s.read)
		if got := len(b.next()); got != s.wantNext {
			t.Fatalf("step %d (read %d): next len %d, want %d", i, s.read, got, s.wantNext)
		}
	}
	for range shrinkAfterReads {
		b.used(1024)
	}
	if got := len(b.next()); got != smallReadSize || b.full != nil {
		t.Errorf("after %d small reads: next len %d (full held: %v), want %d", shrinkAfterReads, got, b.full != nil, smallReadSize)
	}
	b.release() // no-op when small

	// A read size below the small size never grows.
	tiny := newReadBuffer(512)
	tiny.used(512)
	if got := len(tiny.next()); got != 512 {
		t.Errorf("read size 512: next len %d, want 512", got)
	}
}
