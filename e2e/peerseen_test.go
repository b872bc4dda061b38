package e2e

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/lab"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// startHAProxy starts HAProxy with deploy/haproxy/cfg in front of
// upstream and returns where clients connect.
func startHAProxy(t *testing.T, cfg, upstream string) string {
	t.Helper()
	needTool(t, "haproxy", "haproxy")
	listen, status := "127.0.0.1:"+strconv.Itoa(freePort(t)), "127.0.0.1:"+strconv.Itoa(freePort(t))
	startTool(t, "haproxy", lab.HAProxyEnv(listen, upstream, status), "-f", filepath.Join(labDeploy, "haproxy", cfg), "-db")
	waitListening(t, "haproxy", listen)
	return listen
}

// establishedTo is the local addresses of the established TCP sockets
// whose peer is dst, as ss (the kernel) lists them.
func establishedTo(t *testing.T, dst string) []string {
	t.Helper()
	out, err := exec.Command("ss", "-Htn", "state", "established", "dst", dst).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	var local []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[len(f)-1] == dst {
			local = append(local, f[len(f)-2])
		}
	}
	return local
}

// TestPeerSeenFrom: the server's first ack says where it sees the
// connection from, and the client's verdict compares it with its own end.
// Through HAProxy (TCP, WebSocket, gRPC, HTTP/2), which does not name itself in
// via, the words say a hop that did not name itself sits in between, and
// the two addresses are those the kernel (ss) shows: HAProxy's upstream
// socket's local address, and the client's socket to HAProxy. Direct,
// they say the peer is the server, seen from the client's own address.
func TestPeerSeenFrom(t *testing.T) {
	needTool(t, "ss", "iproute2")
	cases := []struct {
		name    string
		proto   string // tcp, websocket, grpc or http2
		haproxy string // its config in deploy/haproxy; "": direct
	}{
		// Straight to the server: its own address.
		{"tcp direct", "tcp", ""},
		{"websocket direct", "websocket", ""},
		{"grpc direct", "grpc", ""},
		{"http2 direct", "http2", ""},
		// HAProxy in TCP mode: it ends TCP and dials the server itself.
		{"tcp haproxy", "tcp", "haproxy-tcp.cfg"},
		// HAProxy in HTTP mode, the WebSocket a tunnel after the upgrade.
		{"websocket haproxy", "websocket", "haproxy-ws.cfg"},
		// HAProxy with h2 on both sides, one upstream connection.
		{"grpc haproxy", "grpc", "haproxy-grpc.cfg"},
		{"http2 haproxy", "http2", "haproxy-h2.cfg"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t)
			upstream, scheme, path := srv.TCPAddr, "tcp://", ""
			switch tc.proto {
			case "websocket":
				upstream, scheme, path = srv.HTTPAddr, "ws://", "/ws"
			case "grpc":
				upstream, scheme = srv.GRPCAddr, "grpc://"
			case "http2":
				upstream, scheme, path = srv.HTTPAddr, "h2c://", "/h2"
			}
			first := upstream // where the client connects
			if tc.haproxy != "" {
				first = startHAProxy(t, tc.haproxy, upstream)
			}
			p := startProc(t, "bp-client", nil, append(append([]string{}, clientDefaults...),
				"--target", scheme+first+path, "--duration", "2s", "--rate", "50", "--payload-size", "16KiB")...)
			// While it runs: the client's socket to its first hop, and
			// the socket that reaches the server (the same one, direct).
			var client, atServer []string
			eventually(t, 10*time.Second, func() string {
				client, atServer = establishedTo(t, first), establishedTo(t, upstream)
				if len(client) != 1 || len(atServer) != 1 {
					return "ss: " + strconv.Itoa(len(client)) + " socket(s) to " + first + ", " + strconv.Itoa(len(atServer)) + " to " + upstream + ", want one each"
				}
				return ""
			})
			if code := p.Wait(t, time.Minute); code != 0 {
				t.Fatalf("client exit %d; stderr:\n%s", code, p.Stderr())
			}
			v := verdictOf(t, parseReport(t, p), 0, p.Stderr())
			t.Logf("seen from %s, local %s; ss: client %s, at the server %s; peer: %s", v.SeenFrom, v.LocalAddr, client[0], atServer[0], v.PeerWords())
			if v.LocalAddr != client[0] || v.SeenFrom != atServer[0] {
				t.Errorf("seen_from %q, local_addr %q; ss shows the socket reaching the server at %s, the client's at %s", v.SeenFrom, v.LocalAddr, atServer[0], client[0])
			}
			checkPeerWords(t, v, tc.haproxy != "")
		})
	}
}

// checkPeerWords: behind a hop the verdict says one that did not name
// itself sits in between; direct, that the peer is the server.
func checkPeerWords(t *testing.T, v verdict.Verdict, hop bool) {
	t.Helper()
	reasons := strings.Join(v.Reasons, "\n")
	if v.AddressRewritten == nil || *v.AddressRewritten != hop {
		t.Errorf("address_rewritten %v, want %v", deref(v.AddressRewritten), hop)
	}
	if hop {
		if !strings.HasPrefix(v.PeerWords(), "the peer (a hop that did not name itself: the server sees this connection from "+v.SeenFrom) ||
			!strings.Contains(reasons, "a hop that did not name itself sits in between") {
			t.Errorf("behind HAProxy: peer %q, reasons:\n%s", v.PeerWords(), reasons)
		}
		return
	}
	if v.PeerWords() != "the peer (the server: it sees this connection from this client's own address, "+v.LocalAddr+")" ||
		!strings.Contains(reasons, "so this client's peer is the server") {
		t.Errorf("direct: peer %q, reasons:\n%s", v.PeerWords(), reasons)
	}
}
