package hop

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

func testOptions(tcpAddr string) Options {
	return Options{Name: "bp-test", Log: slog.New(slog.DiscardHandler),
		Limits:   config.Limits{ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10, WSMaxMessage: 16 << 20},
		HTTPAddr: "127.0.0.1:0", TCPAddr: tcpAddr, StallThreshold: 100 * time.Millisecond,
		HelloTimeout: time.Second, SampleInterval: 100 * time.Millisecond}
}

// TestSetup starts a hop, serves /healthz and /metrics through it, and
// stops it when ctx ends.
func TestSetup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := Start(ctx, testOptions("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.TCPAddr() == "" || st.TLS != nil || st.Hop.Upgrader.MaxMessageSize != 16<<20 {
		t.Fatalf("tcp %q, tls %v, max message %d", st.TCPAddr(), st.TLS, st.Hop.Upgrader.MaxMessageSize)
	}
	handled := make(chan string, 1)
	servers := []Served{st.Served(ctx, st.Mux(true), st.HTTPLn)}
	if servers[0].Server.MaxHeaderBytes != 64<<10 {
		t.Errorf("header limit %d, want the Limits'", servers[0].Server.MaxHeaderBytes)
	}
	served := make(chan error, 1)
	go func() {
		served <- st.Serve(ctx, servers, func(_ context.Context, _ *flow.Hello, c flow.Conn, _ string) {
			handled <- string(c.Protocol())
		})
	}()

	base := "http://" + st.HTTPLn.Addr().String()
	for path, want := range map[string]string{"/healthz": "ok\n", "/metrics": "bp_connections"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s, %.200q; want %q", path, resp.Status, body, want)
		}
	}
	nc, err := net.Dial("tcp", st.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	select {
	case p := <-handled: // hello-less after the hello timeout
		if p != string(flow.TCP) {
			t.Errorf("protocol %s, want tcp", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the TCP connection never reached the handler")
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
	st.Close() // twice is safe
}

// TestSetupNoTCP: an empty TCP address opens no TCP listener.
func TestSetupNoTCP(t *testing.T) {
	st, err := Start(context.Background(), testOptions(""))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.TCPLn != nil || st.TCPAddr() != "" {
		t.Errorf("TCP listener %v, want none", st.TCPLn)
	}
}

// TestSetupListenError: a port in use fails Start, which stops what it
// started.
func TestSetupListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	o := testOptions("")
	o.HTTPAddr = ln.Addr().String()
	if st, err := Start(context.Background(), o); err == nil || !strings.Contains(err.Error(), "http listener") {
		t.Errorf("Start on a port in use: %v, %v; want an http listener error", st, err)
	}
}
