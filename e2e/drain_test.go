package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestClientNeverDrained: a server that stops reading for good (the lab's
// own scenario) must not hang bp-client. When --duration is up with a write
// still blocked, the client gives the path --drain-timeout, then ends with
// exit status 3 and a report that says the path never drained and how many
// bytes were stuck, TCP and WebSocket alike.
func TestClientNeverDrained(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--pause-after", "300ms", "--pause-for", "10m", "--rcvbuf", "64KiB")
	for _, proto := range protocols {
		t.Run(proto.label, func(t *testing.T) {
			t.Parallel()
			began := time.Now()
			sum, code, stderr := runClient(t, "--target", proto.target(srv), "--duration", "1500ms",
				"--drain-timeout", "1500ms", "--sndbuf", "64KiB", "--payload-size", "16KiB")
			took := time.Since(began)
			if code != 3 {
				t.Fatalf("exit %d after %s, want 3 (never drained); stderr:\n%s", code, took, stderr)
			}
			if took > 15*time.Second {
				t.Errorf("took %s: the drain timeout did not bound the run", took)
			}
			if sum.Completed || !strings.Contains(sum.Error, "the path never drained") {
				t.Errorf("report: completed %v, error %q; want a run that says the path never drained", sum.Completed, sum.Error)
			}
			if stuck := sum.BytesWritten - sum.BytesAcked; stuck <= 0 || !strings.Contains(sum.Error, "stuck") {
				t.Errorf("report: %d written, %d acknowledged (%q): want bytes stuck, named", sum.BytesWritten, sum.BytesAcked, sum.Error)
			}
		})
	}
}
