package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestBurstThenSuppressed: a burst of lines per reason, the rest counted,
// and the next allowed line says how many were dropped; reasons are apart.
func TestBurstThenSuppressed(t *testing.T) {
	var buf bytes.Buffer
	l := NewRate(slog.New(slog.NewTextHandler(&buf, nil)), 50*time.Millisecond, 2)
	for range 10 {
		l.Warn("hello", "tcp hello rejected")
	}
	l.Warn("limit", "connection rejected")
	if got := strings.Count(buf.String(), "tcp hello rejected"); got != 2 {
		t.Errorf("%d hello lines, want 2 (the burst):\n%s", got, buf.String())
	}
	if got := l.Suppressed("hello"); got != 8 {
		t.Errorf("suppressed %d, want 8", got)
	}
	if !strings.Contains(buf.String(), "connection rejected") {
		t.Errorf("the limit reason was held back by the hello reason:\n%s", buf.String())
	}
	time.Sleep(120 * time.Millisecond)
	buf.Reset()
	l.Warn("hello", "tcp hello rejected")
	if !strings.Contains(buf.String(), "suppressed=8") || !strings.Contains(buf.String(), "reason=hello") {
		t.Errorf("line after the pause lacks suppressed=8 reason=hello: %s", buf.String())
	}
	if got := l.Suppressed("hello"); got != 0 {
		t.Errorf("suppressed %d after a line, want 0", got)
	}
}
