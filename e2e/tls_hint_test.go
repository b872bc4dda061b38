package e2e

import (
	"strings"
	"testing"
)

// TestPlainClientAtTLSPort: a ws:// client aimed at a TLS server's HTTP port
// is told to use wss://, not only "bad handshake (HTTP 400)".
func TestPlainClientAtTLSPort(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "server")
	srv := startServer(t, pki.ServeArgs()...)
	_, code, stderr := runClient(t, "--target", "ws://"+srv.HTTPAddr+"/ws", "--count", "1", "--duration", "0")
	if code != 1 || !strings.Contains(stderr, "the server speaks TLS on this port, use wss://") {
		t.Errorf("exit %d, want 1 with a hint to use wss://; stderr:\n%s", code, stderr)
	}
}
