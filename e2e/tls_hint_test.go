package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
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

// TestPlainTCPClientAtTLSPort: a tcp:// client aimed at a TLS server's TCP
// port is told, in the protocol's refusal line, to use tls://, not only that
// the connection was reset; the server counts the refused hello.
func TestPlainTCPClientAtTLSPort(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "server")
	srv := startServer(t, pki.ServeArgs()...)
	_, code, stderr := runClient(t, "--target", "tcp://"+srv.TCPAddr, "--duration", "1s")
	if code != 1 || !strings.Contains(stderr, "the server refused the connection: this port serves TLS: use tls://") {
		t.Errorf("exit %d, want 1 with the server's refusal naming tls://; stderr:\n%s", code, stderr)
	}
	eventually(t, 5*time.Second, func() string {
		if n := scrapeTLS(t, pki, "https://"+srv.HTTPAddr+"/metrics").Labelled("bp_connection_errors_total", "reason")["hello"]; n != 1 {
			return fmt.Sprintf("bp_connection_errors_total{reason=hello} = %v, want 1", n)
		}
		return ""
	})
}
