package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/lab"
)

// labDeploy is the deploy/ directory, seen from this package.
const labDeploy = "../deploy"

// needLabProfile skips a profile this machine cannot run (with the install
// hint), or fails in CI, where scripts/install-test-deps installs HAProxy
// and nginx. A relay profile skips while bp-relay is not built, CI or not.
func needLabProfile(t *testing.T, p lab.Profile) {
	t.Helper()
	err := p.Missing(binDir)
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" && p.Needs != "bp-relay" {
		t.Fatalf("profile %s: %v", p.Name, err)
	}
	t.Skipf("profile %s: %v", p.Name, err)
}

// runLab runs a profile through the lab with the given server and client
// flags, bounded by a minute.
func runLab(t *testing.T, p lab.Profile, server, client []string) *lab.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := lab.Run(ctx, p, lab.Options{Bin: binDir, Deploy: labDeploy, LineBin: binary("delayline"), Server: server, Client: client})
	if err != nil {
		t.Fatalf("lab %s: %v", p.Name, err)
	}
	return res
}

// hopValue is a hop's number, failing the test when the hop lacks it.
func hopValue(t *testing.T, res *lab.Result, hop, key string) float64 {
	t.Helper()
	h := res.Hop(hop)
	if h == nil {
		t.Fatalf("%s: no hop %s in %+v", res.Profile.Name, hop, res.Hops)
	}
	v, ok := h.Value(key)
	if !ok {
		t.Fatalf("%s: hop %s has no %s: %+v", res.Profile.Name, hop, key, h.Numbers)
	}
	return v
}

// TestLabExactBytes: every profile carries a counted upload through its
// real hop (HAProxy, nginx, bp-relay) with every byte accounted for: the
// client's report, its acks and the server's metrics agree to the byte, and
// the hop forwarded at least the payload plus a bounded protocol overhead
// (hello, frame headers, fin; the WebSocket handshake).
func TestLabExactBytes(t *testing.T) {
	t.Parallel()
	// 3001 divides nothing nice, so a partial frame would show.
	const payload, count = 3001, 2000
	const want = payload * count
	for _, p := range lab.Profiles {
		if p.OnHosts() {
			continue // e2e/paths_test.go, one at a time
		}
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			needLabProfile(t, p)
			res := runLab(t, p, nil, []string{"--payload-size", "3001", "--count", "2000", "--duration", "0"})
			s := res.Client
			if !s.Completed || s.BytesWritten != want || s.BytesAcked != want {
				t.Fatalf("client: completed %v (%s), written %d, acked %d; want %d both", s.Completed, s.Error, s.BytesWritten, s.BytesAcked, want)
			}
			if got := hopValue(t, res, "bp-client", "bytes_written"); got != want {
				t.Errorf("client metrics: bp_bytes_written_total %.0f, want %d", got, want)
			}
			if got := hopValue(t, res, "bp-server", "bytes_read"); got != want {
				t.Errorf("server metrics: bp_bytes_read_total %.0f, want %d", got, want)
			}
			// Protocol overhead per message: 5 bytes of TCP frame header, or
			// at most 14 of WebSocket frame header; plus hello, fin and the
			// handshake, under 4 KiB.
			maxOverhead := float64(count*14 + 4096)
			between := func(what string, got float64) {
				t.Helper()
				if got < want || got > want+maxOverhead {
					t.Errorf("%s: %.0f bytes, want between %d and %.0f", what, got, want, want+maxOverhead)
				}
			}
			switch p.Needs {
			case "haproxy":
				in := hopValue(t, res, "haproxy", "frontend_bytes_in")
				out := hopValue(t, res, "haproxy", "backend_bytes_out")
				between("haproxy in from client", in)
				if out != in {
					t.Errorf("haproxy forwarded %.0f bytes to the server but took %.0f from the client", out, in)
				}
			case "nginx":
				out := hopValue(t, res, "nginx", "upstream_bytes_sent")
				between("nginx out to server", out)
				if n := hopValue(t, res, "nginx", "connections"); n != 1 {
					t.Errorf("nginx logged %.0f connections, want 1", n)
				}
				if p.Scheme == "tcp" {
					if in := hopValue(t, res, "nginx", "bytes_in"); in != out {
						t.Errorf("nginx forwarded %.0f bytes to the server but took %.0f from the client", out, in)
					}
				}
			case "bp-relay":
				if got := hopValue(t, res, "bp-relay", "bytes_read"); got != want {
					t.Errorf("relay read %.0f payload bytes, want %d", got, want)
				}
				if got := hopValue(t, res, "bp-relay", "bytes_written"); got != want {
					t.Errorf("relay wrote %.0f payload bytes, want %d", got, want)
				}
			}
		})
	}
}

// TestLabPausedServerBlocksClient: through each real proxy, a server that
// stops reading for 2.5 s makes the client's writes block, once the
// proxy's and the kernels' buffers have filled; afterwards everything
// drains and is acknowledged. Tolerances are wide: the point is that
// backpressure crosses the hop at all.
func TestLabPausedServerBlocksClient(t *testing.T) {
	t.Parallel()
	server := []string{"--pause-after", "500ms", "--pause-for", "2500ms", "--rcvbuf", "256KiB"}
	// 256 KiB at 160 messages/s, about 40 MB/s: a few MB of buffers fill in
	// a fraction of a second. The messages are large because on a busy
	// machine the rate is what falls short: each late wake-up of the
	// client's pacer loses its turn (its burst is 1), and a CI run under
	// the other packages' tests wrote 64 KiB messages at 35 a second, not
	// 160; 5 MB of buffers then held all it wrote during the pause.
	client := []string{"--duration", "2s", "--payload-size", "256KiB", "--rate", "160", "--sndbuf", "256KiB"}
	for _, p := range lab.Profiles {
		if (p.Needs != "haproxy" && p.Needs != "nginx") || p.OnHosts() {
			continue // host profiles: e2e/paths_test.go
		}
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			needLabProfile(t, p)
			res := runLab(t, p, server, client)
			s := res.Client
			if !s.Completed || s.BytesAcked != s.BytesWritten || s.BytesWritten == 0 {
				t.Fatalf("client: completed %v (%s), written %d, acked %d", s.Completed, s.Error, s.BytesWritten, s.BytesAcked)
			}
			if got := hopValue(t, res, "bp-server", "bytes_read"); got != float64(s.BytesWritten) {
				t.Errorf("server read %.0f bytes, client wrote %d", got, s.BytesWritten)
			}
			if paused := hopValue(t, res, "bp-server", "read_paused_seconds"); paused < 2 || paused > 4 {
				t.Errorf("server paused reading %.2f s, want about 2.5", paused)
			}
			// The pause holds the client's writes back for about 2 s of the
			// 2.5 s; half a second is the least that shows backpressure
			// arrived.
			if s.BlockedSeconds < 0.5 || s.Stalls < 1 || s.LongestStallSeconds < 0.3 {
				t.Errorf("client blocked %.2f s, %d stalls, longest %.2f s: backpressure did not reach it through %s (wrote %d bytes, %.0f of %.0f messages a second)",
					s.BlockedSeconds, s.Stalls, s.LongestStallSeconds, p.Name, s.BytesWritten, s.AchievedMessagesPerSecond, s.AskedMessagesPerSecond)
			}
			// Before blocking, the path absorbed the client's socket buffer
			// and more: the proxy's buffers and sockets.
			if s.PeakBytesInPipe < 256<<10 {
				t.Errorf("peak in pipe %d bytes, want at least 256 KiB", s.PeakBytesInPipe)
			}
			t.Logf("%s: blocked %.2f s, %d stalls, longest %.2f s, peak in pipe %d bytes",
				p.Name, s.BlockedSeconds, s.Stalls, s.LongestStallSeconds, s.PeakBytesInPipe)
		})
	}
}

// TestLabConfigsValid: the HAProxy configs pass "haproxy -c", the nginx
// templates, rendered as the lab renders them, pass "nginx -t", and the
// Caddyfiles, with the lab's environment, pass "caddy validate".
func TestLabConfigsValid(t *testing.T) {
	t.Parallel()
	t.Run("caddy", func(t *testing.T) {
		caddy, err := exec.LookPath("caddy")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("caddy not installed: %s", lab.CaddyInstallHint)
			}
			t.Skipf("caddy not installed: %s", lab.CaddyInstallHint)
		}
		files, _ := filepath.Glob(filepath.Join(labDeploy, "caddy", "*.Caddyfile"))
		if len(files) < 1 {
			t.Fatalf("want caddy-ws.Caddyfile in deploy/caddy, found %v", files)
		}
		// caddy-wss.Caddyfile loads its certificate when validated.
		certs := newTestPKI(t, "caddy")
		for _, f := range files {
			dir := t.TempDir()
			cmd := exec.Command(caddy, "validate", "--config", f, "--adapter", "caddyfile")
			env := append(lab.CaddyEnv("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", filepath.Join(dir, "access.log")),
				lab.CaddyTLSEnv(certs.CertFile, certs.KeyFile)...)
			cmd.Env = testEnv(append(env, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir))
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Valid configuration") {
				t.Errorf("caddy validate --config %s: %v\n%s", f, err, out)
			}
		}
	})
	t.Run("haproxy", func(t *testing.T) {
		haproxy := needTool(t, "haproxy", "haproxy")
		files, _ := filepath.Glob(filepath.Join(labDeploy, "haproxy", "*.cfg"))
		if len(files) < 2 {
			t.Fatalf("want haproxy-tcp.cfg and haproxy-ws.cfg in deploy/haproxy, found %v", files)
		}
		for _, f := range files {
			cmd := exec.Command(haproxy, "-c", "-f", f)
			cmd.Env = testEnv(lab.HAProxyEnv("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"))
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Configuration file is valid") {
				t.Errorf("haproxy -c -f %s: %v\n%s", f, err, out)
			}
		}
	})
	t.Run("nginx", func(t *testing.T) {
		nginx := needTool(t, "nginx", "nginx")
		files, _ := filepath.Glob(filepath.Join(labDeploy, "nginx", "*.conf"))
		if len(files) < 2 {
			t.Fatalf("want nginx-ws.conf and nginx-tcp.conf in deploy/nginx, found %v", files)
		}
		for _, f := range files {
			prefix := t.TempDir()
			conf, err := lab.RenderNginx(f, prefix, lab.NginxVars("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"))
			if err != nil {
				t.Fatal(err)
			}
			args, err := lab.NginxArgs(prefix, conf, true)
			if errors.Is(err, lab.ErrMissing) && os.Getenv("CI") != "true" {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(nginx, args...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "test is successful") {
				t.Errorf("nginx %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})
}

// TestLabByteMap: for every profile, at the moment the client's write first
// blocked behind a paused server, the lab's byte map puts every unread
// byte somewhere: its pieces (each a kernel queue read by the binaries or
// by bp-sockets beside the hop, or a hop's own buffer) add up to the
// client's bytes written minus the server's bytes read, within one payload
// write plus frame headers (and what unmeasured buffers may hold), and the
// hop holding the most is the one the configuration predicts. The client
// writes as fast as the path allows, so it blocks within the pause even
// when Linux autotunes the hops' receive buffers to tens of MB.
func TestLabByteMap(t *testing.T) {
	t.Parallel()
	server := []string{"--pause-after", "300ms", "--pause-for", "3s", "--rcvbuf", "256KiB"}
	client := []string{"--duration", "1500ms", "--rate", "0", "--sndbuf", "256KiB"}
	// One profile at a time: each writes at full speed, and two at once on
	// two cores starve each other's pollers and the stall they look for.
	// Every profile's map must close. Maps that did not used to come from
	// samplers' pages seconds old, which look still two in a row: the
	// pacing held the next pass back nine times the last one's wall time,
	// which bp-sockets' dump of a host with tens of thousands of sockets
	// made long (it now asks the kernel for the hop's ports only), and so
	// did preemption on a busy machine (the cost is now the pass's CPU
	// time). Or from a stall's peak taken while a sampler was a pass
	// behind (it is now taken once it holds still, as the first block is).
	for _, p := range lab.Profiles {
		if p.OnHosts() {
			continue // e2e/paths_test.go, one at a time
		}
		t.Run(p.Name, func(t *testing.T) {
			needLabProfile(t, p)
			res := runLab(t, p, server, client)
			// The map is taken at a moment the poller sees: on a machine
			// busy enough to starve it, none may be still enough (the lab
			// then says DOES NOT CLOSE, honestly). One more run then.
			if m := res.ByteMap; m != nil && (m.Moment != "first_block" || !m.Closes) {
				t.Logf("%s: %s at %s; running it again", p.Name, m.ClosingLine(), m.Moment)
				res = runLab(t, p, server, client)
			}
			m := res.ByteMap
			if m == nil {
				t.Fatalf("no byte map; client: %+v", res.Client)
			}
			var sum float64
			for _, pc := range m.Pieces {
				sum += pc.Bytes
				if pc.Bytes < 0 {
					t.Errorf("%s %s: %.0f bytes, a negative amount", pc.Hop, pc.Place, pc.Bytes)
				}
			}
			if sum != m.TotalBytes || m.ClosingErrorBytes != m.TotalBytes-m.InPipeBytes {
				t.Errorf("total %.0f, pieces sum %.0f, closing error %.0f: inconsistent", m.TotalBytes, sum, m.ClosingErrorBytes)
			}
			// The map is taken at the client's first block or, when the
			// client never blocked (bp-relay's receive window, autotuned to
			// tens of MB, takes all a client starved by a busy machine
			// writes in 1.5 s), at the stall's peak; either once it holds
			// still, so it must close.
			if m.Moment != "first_block" && m.Moment != "stall_peak" {
				t.Errorf("moment %q, want first_block or stall_peak", m.Moment)
			}
			if !m.Closes {
				t.Errorf("%s", m.ClosingLine())
			}
			// The client's own account, from its acks alone, is an
			// independent count: the map is taken at the first block or
			// later in the stall, so it holds at least what the verdict
			// says was absorbed when the writes first blocked, and at most
			// the peak the client saw in the pipe (two payload writes of
			// slack each way).
			if v := res.Client.Verdict; v != nil && v.AbsorbedBytes != nil {
				low, high := float64(*v.AbsorbedBytes)-2*65536, float64(res.Client.PeakBytesInPipe)+2*65536
				if m.InPipeBytes < low || m.InPipeBytes > high {
					t.Errorf("in the pipe %.0f bytes; the client saw %d absorbed at its first block and a peak of %d", m.InPipeBytes, *v.AbsorbedBytes, res.Client.PeakBytesInPipe)
				}
			}
			checkHolder(t, p, m)
			t.Logf("%s: %s; %s", p.Name, m.ClosingLine(), m.Verdict())
		})
	}
}

// checkStreamHolder: over HTTP/2 and gRPC the server's stream window
// (1 MiB for HTTP/2; grpc-go's, 64 KiB growing with BDP estimation) is
// what a paused stream fills past the socket, and a hop in front reads
// only what its own windows allow: HAProxy's tune.h2 windows, nginx's
// http2 buffers, Go's under Caddy (unmeasured, bounded by its note). The
// most then sits in bp-server's stream buffers, or, for gRPC, wherever
// grpc-go's windows leave it.
func checkStreamHolder(t *testing.T, p lab.Profile, m *lab.ByteMap) {
	t.Helper()
	if p.Scheme == "h2c" && (m.MostHop != "bp-server" || m.MostPlace != "stream buffers") {
		t.Errorf("most held by %s in its %s, want bp-server's stream buffers", m.MostHop, m.MostPlace)
	}
	for _, pc := range m.Pieces {
		if pc.Hop == p.Needs && pc.Place == "buffer" && pc.Measured && pc.Bytes > 256<<10 {
			t.Errorf("%s's own buffer %.0f bytes, more than its stream windows allow", p.Needs, pc.Bytes)
		}
	}
}

// checkHolder: the hop the configuration says holds the most does.
func checkHolder(t *testing.T, p lab.Profile, m *lab.ByteMap) {
	t.Helper()
	if p.Scheme == "h2c" || p.Scheme == "grpc" {
		checkStreamHolder(t, p, m)
		return
	}
	switch p.Needs {
	case "":
		// Only the two ends' socket buffers, about the same size.
		if m.MostHop != "bp-client" && m.MostHop != "bp-server" {
			t.Errorf("most held by %s, want one of the ends", m.MostHop)
		}
	case "bp-relay":
		if m.MostHop != "bp-relay" {
			t.Errorf("most held by %s, want bp-relay", m.MostHop)
		}
		// --buffer 32MiB: its own buffer; --buffer 0: its kernel queues.
		if buffered := p.Name == "relay-buffered"; buffered != (m.MostPlace == "buffer") {
			t.Errorf("bp-relay held the most in its %s", m.MostPlace)
		}
	default:
		// HAProxy, nginx and Caddy copy through 16-32 KiB buffers; their
		// two sockets' autotuned kernel queues hold the rest.
		if m.MostHop != p.Needs || m.MostPlace == "buffer" {
			t.Errorf("most held by %s in its %s, want %s's kernel queues", m.MostHop, m.MostPlace, p.Needs)
		}
		for _, pc := range m.Pieces {
			if pc.Hop == p.Needs && pc.Place == "buffer" && pc.Bytes > 64<<10 {
				t.Errorf("%s's own buffer %.0f bytes, more than its configuration allows", p.Needs, pc.Bytes)
			}
		}
	}
}
