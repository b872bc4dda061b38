package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startSockets starts bp-sockets with JSON logs, metrics on a free
// loopback port and a quick sample interval, then args; it returns the
// process and its /metrics URL once it watches.
func startSockets(t testing.TB, args ...string) (*Proc, string) {
	t.Helper()
	all := append([]string{"--metrics-addr", "127.0.0.1:0", "--log-format", "json", "--sample-interval", "50ms"}, args...)
	p := startProc(t, "bp-sockets", nil, all...)
	l := p.WaitLog(t, "bp-sockets watching", 20*time.Second)
	addr, _ := l["metrics"].(string)
	if addr == "" {
		t.Fatalf("bp-sockets logged no metrics address: %v", l)
	}
	p.WaitLog(t, "sockets read", 10*time.Second) // the first pass worked
	return p, "http://" + addr + "/metrics"
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// ssQueues sums, with iproute2's ss (an independent reader of the same
// sockets), the Recv-Q and Send-Q of the established sockets filter
// selects.
func ssQueues(t *testing.T, ss, filter string) (recvQ, sendQ, n int) {
	t.Helper()
	out, err := exec.Command(ss, "-tnH", "state", "established", filter).Output()
	if err != nil {
		t.Fatalf("ss %s: %v", filter, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		r, _ := strconv.Atoi(f[0])
		s, _ := strconv.Atoi(f[1])
		recvQ, sendQ, n = recvQ+r, sendQ+s, n+1
	}
	return recvQ, sendQ, n
}

// TestSocketsRelayHop: bp-client -> bp-relay -> bp-server whose reader is
// paused, so every queue fills and holds still. bp-sockets, told the
// relay's listening port (downstream) and the server's (upstream), sees
// the relay's two sockets: the downstream receive queue and the upstream
// send queue full, one connection each side, the same bytes ss reports
// for the same sockets; and the upstream side held back by the window.
func TestSocketsRelayHop(t *testing.T) {
	ss := needTool(t, "ss", "iproute2")
	srv := startServer(t, "--sample-interval", "0", "--pause-after", "200ms", "--pause-for", "60s", "--rcvbuf", "64KiB")
	relay := startRelay(t, srv.TCPURL(), "--sample-interval", "0", "--downstream-rcvbuf", "64KiB", "--upstream-sndbuf", "64KiB")
	down, up := port(relay.TCPAddr), port(srv.TCPAddr)
	sock, url := startSockets(t, "--downstream-ports", down, "--upstream-ports", up)
	client := startClient(t, "--target", relay.Target("tcp"), "--duration", "40s", "--sndbuf", "64KiB", "--payload-size", "16KiB")
	defer client.Signal(t, syscall.SIGTERM)

	var last string
	eventually(t, 30*time.Second, func() string {
		before := scrape(t, url)
		dRecv, _, dn := ssQueues(t, ss, "( sport = :"+down+" )")
		_, uSend, un := ssQueues(t, ss, "( dport = :"+up+" )")
		after := scrape(t, url)
		get := func(s Scrape, name, side string) float64 { v, _ := s.Get(name, "side", side); return v }
		b := [4]float64{get(before, "bp_socket_recv_queue_bytes", "downstream"), get(before, "bp_socket_send_queue_bytes", "upstream"),
			get(before, "bp_socket_sampled_connections", "downstream"), get(before, "bp_socket_sampled_connections", "upstream")}
		a := [4]float64{get(after, "bp_socket_recv_queue_bytes", "downstream"), get(after, "bp_socket_send_queue_bytes", "upstream"),
			get(after, "bp_socket_sampled_connections", "downstream"), get(after, "bp_socket_sampled_connections", "upstream")}
		last = fmt.Sprintf("bp-sockets: downstream recv queue %v, upstream send queue %v, connections %v/%v; ss: downstream Recv-Q %d (%d sockets), upstream Send-Q %d (%d sockets)",
			a[0], a[1], a[2], a[3], dRecv, dn, uSend, un)
		switch {
		case a[0] == 0 || a[1] == 0:
			return "queues not filled yet: " + last
		case a != b:
			return "still moving between two scrapes: " + last
		case a[2] != 1 || a[3] != 1 || dn != 1 || un != 1:
			return "want one connection a side: " + last
		case a[0] != float64(dRecv) || a[1] != float64(uSend):
			return "bp-sockets and ss disagree: " + last
		}
		return ""
	})
	t.Log(last)

	s := scrape(t, url)
	eventually(t, 10*time.Second, func() string {
		s = scrape(t, url)
		if v, ok := s.Get("bp_socket_rwnd_limited_seconds_total", "side", "upstream"); !ok || v <= 0 {
			return fmt.Sprintf("upstream rwnd-limited seconds %v (present %v): want > 0 behind the paused server", v, ok)
		}
		return ""
	})
	for _, name := range []string{"bp_socket_own_window_min_bytes", "bp_socket_peer_window_min_bytes"} {
		for _, side := range []string{"downstream", "upstream"} {
			if _, ok := s.Get(name, "side", side); !ok {
				t.Errorf("%s{side=%q} absent with a connection on that side", name, side)
			}
		}
	}
	if _, ok := s.Get("bp_socket_recv_queue_bytes", "protocol", "tcp"); ok {
		t.Error("bp-sockets exports a protocol label")
	}
	if strings.Contains(sock.Stderr(), `"level":"WARN"`) {
		t.Errorf("bp-sockets warned:\n%s", sock.Stderr())
	}
}

// TestSocketsUnusedPort: ports no socket uses give zero connections and
// empty queues, and no window minimum (a minimum over nothing is none).
func TestSocketsUnusedPort(t *testing.T) {
	p := strconv.Itoa(freePort(t))
	_, url := startSockets(t, "--downstream-ports", p, "--upstream-ports", p)
	s := scrape(t, url)
	for _, side := range []string{"downstream", "upstream"} {
		for _, name := range []string{"bp_socket_sampled_connections", "bp_socket_recv_queue_bytes", "bp_socket_send_queue_bytes"} {
			if v := s.Value(t, name, "side", side); v != 0 {
				t.Errorf("%s{side=%q} = %v, want 0", name, side, v)
			}
		}
		for _, name := range []string{"bp_socket_own_window_min_bytes", "bp_socket_peer_window_min_bytes"} {
			if v, ok := s.Get(name, "side", side); ok {
				t.Errorf("%s{side=%q} = %v with no socket: want it absent", name, side, v)
			}
		}
	}
}

// TestSocketsBadPorts: a port list that is not ports stops bp-sockets at
// start with exit status 2 and a message naming the setting and the value.
func TestSocketsBadPorts(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"name", nil, []string{"--downstream-ports", "80,http"}, `invalid value "80,http" for --downstream-ports (BP_DOWNSTREAM_PORTS): "http" is not a port`},
		{"too big", nil, []string{"--upstream-ports", "70000"}, `invalid value "70000" for --upstream-ports (BP_UPSTREAM_PORTS): "70000" is not a port`},
		{"range", nil, []string{"--downstream-ports", "8000-8010"}, `"8000-8010" is not a port`},
		{"env", []string{"BP_UPSTREAM_PORTS=8080;8081"}, nil, `--upstream-ports (BP_UPSTREAM_PORTS): "8080;8081" is not a port`},
		{"none", nil, nil, "give the hop's ports: --downstream-ports, --upstream-ports or both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProc(t, "bp-sockets", tc.env, append([]string{"--metrics-addr", "127.0.0.1:0"}, tc.args...)...)
			if code := p.Wait(t, 10*time.Second); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			if !strings.Contains(p.Stderr(), tc.want) {
				t.Errorf("stderr %q, want %q", p.Stderr(), tc.want)
			}
		})
	}
}
