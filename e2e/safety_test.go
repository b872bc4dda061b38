package e2e

import (
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// openSilent opens, on both listeners of a binary, a TCP connection that
// has begun its hello and a WebSocket that has not sent one: peers a
// shutdown must not wait for (their hello timeout is long).
func openSilent(t *testing.T, tcpAddr, httpAddr string) {
	t.Helper()
	nc, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.Write([]byte(`BP/1 {"type":"hello"`))
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+httpAddr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
}

// TestRelayAndServerSIGTERM: with runs going through bp-relay over TCP and
// WebSocket (hijacked), and peers stuck before their hello on both, SIGTERM
// makes the relay, then the server, exit with status 0 well within Cloud
// Foundry's 10 s, without waiting out their shutdown deadline (the peers
// before their hello would hold it for 30 s), and their last log lines are
// written.
func TestRelayAndServerSIGTERM(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--hello-timeout", "30s")
	relay := startRelay(t, "tcp://"+srv.TCPAddr, "--hello-timeout", "30s")
	var clients []*Client
	for _, proto := range []string{"tcp", "websocket"} {
		clients = append(clients, startClient(t, "--target", relay.Target(proto), "--duration", "1m", "--rate", "100"))
	}
	openSilent(t, relay.TCPAddr, relay.HTTPAddr)
	openSilent(t, srv.TCPAddr, srv.HTTPAddr)
	eventually(t, 10*time.Second, func() string {
		m := scrape(t, relay.MetricsURL())
		if tcp, ws := m.Value(t, "bp_connections", "protocol", "tcp"), m.Value(t, "bp_connections", "protocol", "websocket"); tcp != 3 || ws != 1 {
			return fmt.Sprintf("relay has %.0f tcp and %.0f websocket connections, want 3 (one downstream, two upstream) and 1", tcp, ws)
		}
		return ""
	})
	for _, p := range []struct {
		name string
		proc *Proc
		last string
	}{{"bp-relay", relay.Proc, "bp-relay shutting down"}, {"bp-server", srv.Proc, "bp-server shutting down"}} {
		p.proc.Signal(t, syscall.SIGTERM)
		began := time.Now()
		code := p.proc.Wait(t, 10*time.Second)
		took := time.Since(began)
		t.Logf("%s exited %s after SIGTERM with status %d", p.name, took.Round(time.Millisecond), code)
		if code != 0 || took > 4*time.Second {
			t.Errorf("%s: exit %d after %s, want 0 within 4s; stderr:\n%s", p.name, code, took, p.proc.Stderr())
		}
		if len(p.proc.Logs("connections still open at shutdown deadline")) > 0 {
			t.Errorf("%s waited out its shutdown deadline", p.name)
		}
		// The relay closes its runs at shutdown; the server saw them end
		// with the relay already.
		if len(p.proc.Logs(p.last)) == 0 || (p.name == "bp-relay" && len(p.proc.Logs("connection closed at shutdown")) != 2) {
			t.Errorf("%s: final log lines missing; stderr:\n%s", p.name, p.proc.Stderr())
		}
		if n := len(p.proc.Logs("tcp hello rejected")) + len(p.proc.Logs("websocket hello rejected")); n != 0 {
			t.Errorf("%s counted %d shutdown-cut hellos as rejected", p.name, n)
		}
	}
	for _, c := range clients {
		if _, code := c.Finish(t, 15*time.Second); code == 0 {
			t.Errorf("client exit 0 after the relay went away; want a failure")
		}
	}
}
