package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestLegacyWebSocketHello: the 2018 go-backpressure client announced
// {"payloadSize":N,"requestsTotal":M} as its first message and then sent its
// payload, as text messages; the server counts that payload exactly and
// sends it no acks.
func TestLegacyWebSocketHello(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, srv.WSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"payloadSize":1024,"requestsTotal":100}`)); err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("x"), 1024)
	for i := 0; i < 100; i++ {
		if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	// The server must send no acks to a legacy client: nothing but the
	// close handshake arrives. Read in the background while closing.
	got := make(chan string, 1)
	go func() {
		var seen []string
		for {
			mt, b, err := ws.ReadMessage()
			if err != nil {
				got <- strings.Join(seen, ", ")
				return
			}
			seen = append(seen, fmt.Sprintf("type %d %q", mt, b))
		}
	}()
	if err := ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case seen := <-got:
		if seen != "" {
			t.Errorf("server sent messages to a legacy client: %s", seen)
		}
	case <-time.After(10 * time.Second):
		t.Error("server did not answer the close")
	}

	eventually(t, 10*time.Second, func() string {
		m := scrape(t, srv.MetricsURL())
		read := m.Value(t, "bp_bytes_read_total", "protocol", "websocket")
		conns := m.Value(t, "bp_connections", "protocol", "websocket")
		if read != 102400 || conns != 0 {
			return fmt.Sprintf("server bp_bytes_read_total{protocol=websocket} = %.0f, bp_connections = %.0f; want 102400, 0", read, conns)
		}
		if e := m.Sum("bp_connection_errors_total"); e != 0 {
			return fmt.Sprintf("bp_connection_errors_total = %.0f, want 0 (a clean close)", e)
		}
		return ""
	})
}

// TestHellolessTCP: a raw sender with no hello (what nc does) has every byte
// counted as payload.
func TestHellolessTCP(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	// Starts like a hello prefix would not ("BP/2"), and is not a multiple
	// of any read size.
	payload := bytes.Repeat([]byte("BP/2 raw bytes\n"), 70001)
	nc, err := net.Dial("tcp", srv.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(payload); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	waitRead(t, srv, "tcp", int64(len(payload)), 1)
}

// TestHellolessTCPTool: the same with a real tool (socat, else OpenBSD nc).
func TestHellolessTCPTool(t *testing.T) {
	t.Parallel()
	var tool string
	var args []string
	if p, err := exec.LookPath("socat"); err == nil {
		tool, args = p, []string{"-u", "STDIN"}
	} else if p, err := exec.LookPath("nc"); err == nil && ncHasN(p) {
		tool, args = p, []string{"-N"}
	} else {
		needTool(t, "socat", "socat")
	}
	srv := startServer(t)
	host, port, _ := net.SplitHostPort(srv.TCPAddr)
	if strings.HasSuffix(tool, "socat") {
		args = append(args, "TCP:"+srv.TCPAddr)
	} else {
		args = append(args, host, port)
	}
	payload := bytes.Repeat([]byte("0123456789abcdef"), 123457)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Stdin = bytes.NewReader(payload)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
	waitRead(t, srv, "tcp", int64(len(payload)), 1)
}

// ncHasN reports whether nc is OpenBSD's, whose -N closes the connection
// at the end of stdin.
func ncHasN(path string) bool {
	out, _ := exec.Command(path, "-h").CombinedOutput()
	return bytes.Contains(out, []byte("-N"))
}

// waitRead waits until the server has read want bytes over proto on conns
// connections, all closed without error.
func waitRead(t *testing.T, srv *Server, proto string, want int64, conns float64) {
	t.Helper()
	eventually(t, 10*time.Second, func() string {
		m := scrape(t, srv.MetricsURL())
		read := m.Value(t, "bp_bytes_read_total", "protocol", proto)
		opened := m.Value(t, "bp_connections_opened_total", "protocol", proto)
		open := m.Value(t, "bp_connections", "protocol", proto)
		errs := m.Sum("bp_connection_errors_total")
		if int64(read) != want || opened != conns || open != 0 || errs != 0 {
			return fmt.Sprintf("server read %.0f bytes on %.0f connections (%.0f open, %.0f errors); want %d on %.0f, none open, no errors",
				read, opened, open, errs, want, conns)
		}
		return ""
	})
}
