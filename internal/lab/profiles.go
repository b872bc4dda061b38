package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/netlab"
)

// InstallHint says how to get HAProxy and nginx from Debian's packages.
const InstallHint = "install with: sudo apt-get install -y haproxy nginx libnginx-mod-stream (or sudo scripts/install-test-deps)"

// Profile is one path from bp-client to bp-server.
type Profile struct {
	Name   string
	Path   string // the path, for people
	Shows  string // what it shows
	Scheme string // how the client connects: "tcp", "ws", "h2c" or "grpc"
	Needs  string // the program the hop runs: "", "bp-relay", "haproxy", "nginx" or "caddy"

	hop func(ctx context.Context, r *run, srv serverAddrs) (target string, h *hop, err error)
	wan *wanSpec // hosts of their own and shaped links; nil: loopback
	// front are hops in front of hop, client-most first (wan-two-lbs:
	// nginx in front of HAProxy); also is the program they run.
	front []hopFunc
	also  string
}

// Profiles are the lab's paths, in the order make lab lists and runs them.
var Profiles = []Profile{
	{
		Name: "direct", Scheme: "tcp", Path: "bp-client -> bp-server (TCP)",
		Shows: "the baseline: only the two kernels' socket buffers between writer and reader; the client blocks soon after the server stops reading",
	},
	{
		Name: "direct-ws", Scheme: "ws", Path: "bp-client -> bp-server (WebSocket)",
		Shows: "the same baseline over WebSocket, to compare with the WebSocket proxies",
	},
	{
		Name: "relay-stream", Scheme: "tcp", Needs: "bp-relay", Path: "bp-client -> bp-relay --buffer 0 -> bp-server",
		Shows: "a streaming hop: it stops reading as soon as its upstream blocks, so backpressure passes straight through (plus one more pair of socket buffers)",
		hop:   relayHop("0"),
	},
	{
		Name: "relay-buffered", Scheme: "tcp", Needs: "bp-relay", Path: "bp-client -> bp-relay --buffer 32MiB -> bp-server",
		Shows: "a buffering hop: it absorbs up to 32 MiB before it stops reading, so the client keeps writing long after the server stopped",
		hop:   relayHop("32MiB"),
	},
	{
		Name: "haproxy-tcp", Scheme: "tcp", Needs: "haproxy", Path: "bp-client -> HAProxy (mode tcp) -> bp-server",
		Shows: "HAProxy in TCP mode: a 16 KiB buffer per direction plus autotuned socket buffers on both sides; backpressure passes on once those are full",
		hop:   haproxyHop("haproxy-tcp.cfg", "tcp"),
	},
	{
		Name: "haproxy-ws", Scheme: "ws", Needs: "haproxy", Path: "bp-client -> HAProxy (mode http, WebSocket) -> bp-server",
		Shows: "HAProxy in HTTP mode: after the WebSocket upgrade it is a tunnel with the same buffers as TCP mode",
		hop:   haproxyHop("haproxy-ws.cfg", "ws"),
	},
	{
		Name: "nginx-ws", Scheme: "ws", Needs: "nginx", Path: "bp-client -> nginx (proxy_pass, WebSocket) -> bp-server",
		Shows: "nginx as a WebSocket proxy: an upgraded connection goes through one proxy_buffer_size buffer per direction, proxy_buffering does not apply",
		hop:   nginxHop("nginx-ws.conf", "ws"),
	},
	{
		Name: "nginx-tcp", Scheme: "tcp", Needs: "nginx", Path: "bp-client -> nginx (stream proxy) -> bp-server",
		Shows: "nginx's stream module: one proxy_buffer_size buffer per direction plus autotuned socket buffers",
		hop:   nginxHop("nginx-tcp.conf", "tcp"),
	},
	{
		Name: "caddy-ws", Scheme: "ws", Needs: "caddy", Path: "bp-client -> Caddy (reverse_proxy, WebSocket) -> bp-server",
		Shows: "Caddy, a Go reverse proxy: after the upgrade it copies each direction through a 32 KiB buffer; flush_interval and request buffering do not apply to the tunnel",
		hop:   caddyHop("caddy-ws.Caddyfile", "ws"),
	},
	{
		Name: "h2-direct", Scheme: "h2c", Path: "bp-client -> bp-server (HTTP/2, h2c)",
		Shows: "the HTTP/2 baseline: a paused reader shuts its stream's window (1 MiB), not TCP's; the client's writes wait on the stream window",
	},
	{
		Name: "haproxy-h2", Scheme: "h2c", Needs: "haproxy", Path: "bp-client -> HAProxy (mode http, h2 both sides) -> bp-server",
		Shows: "HAProxy demultiplexes each stream into buffers of its own and multiplexes it again towards the server: its tune.h2.initial-window-size (64 KiB) is what a stream may send ahead of it",
		hop:   haproxyHop("haproxy-h2.cfg", "h2c"),
	},
	{
		Name: "caddy-h2", Scheme: "h2c", Needs: "caddy", Path: "bp-client -> Caddy (reverse_proxy, h2c both sides) -> bp-server",
		Shows: "Caddy on Go's HTTP/2: each stream is a request proxied as a stream upstream; Go's windows (1 MiB per stream and per connection) hold what the server has not read",
		hop:   caddyHop("caddy-h2.Caddyfile", "h2c"),
	},
	{
		Name: "grpc-direct", Scheme: "grpc", Path: "bp-client -> bp-server (gRPC, h2c)",
		Shows: "the gRPC baseline: a paused handler leaves its messages in grpc-go's receive buffers up to the stream window (64 KiB, grown by BDP estimation), and the client's Send waits on it",
	},
	{
		Name: "nginx-grpc", Scheme: "grpc", Needs: "nginx", Path: "bp-client -> nginx (grpc_pass, h2c both sides) -> bp-server",
		Shows: "nginx's grpc_pass: one upstream connection per client stream, so streams stay apart; a stream's bytes wait in its 64k request-body buffer behind the 64k window nginx advertises",
		hop:   nginxHop("nginx-grpc.conf", "grpc"),
	},
	{
		Name: "haproxy-grpc", Scheme: "grpc", Needs: "haproxy", Path: "bp-client -> HAProxy (mode http, h2 both sides) -> bp-server (gRPC)",
		Shows: "HAProxy carrying gRPC: each stream goes through its 16 KiB buffers behind a 64 KiB window (tune.h2.initial-window-size), streams of one client sharing one backend connection",
		hop:   haproxyHop("haproxy-grpc.cfg", "grpc"),
	},
	{
		Name: "wan-direct", Scheme: "tcp", Path: "client host -> 100 Mbit/s, 30 ms -> server host (bp-server)",
		Shows: "a VM with a public IP across the internet: the kernels autotune their buffers to the bandwidth-delay product, and the bytes in flight on the link are a place of their own",
		wan: &wanSpec{hosts: []string{"client", "server"}, links: []netlab.Link{
			{A: "client", B: "server", Rate: 100_000_000, RTT: 30 * time.Millisecond}}},
	},
	{
		Name: "wan-haproxy", Scheme: "tcp", Needs: "haproxy", Path: "client host -> 1 Gbit/s, 20 ms -> HAProxy host (mode tcp) -> 10 Gbit/s, 0.5 ms -> server host",
		Shows: "a VM behind a cloud load balancer: the long link is in front of HAProxy, whose host buffers as much as its kernel autotunes; the short one behind it",
		hop:   haproxyHop("haproxy-tcp.cfg", "tcp"),
		wan: &wanSpec{hosts: []string{"client", "haproxy", "server"}, links: []netlab.Link{
			{A: "client", B: "haproxy", Rate: 1_000_000_000, RTT: 20 * time.Millisecond},
			{A: "haproxy", B: "server", Rate: 10_000_000_000, RTT: 500 * time.Microsecond}}},
	},
	{
		Name: "wan-two-lbs", Scheme: "tcp", Needs: "haproxy", also: "nginx",
		Path:  "client host -> 1 Gbit/s, 20 ms -> nginx host (stream) -> 10 Gbit/s, 0.5 ms -> HAProxy host (mode tcp) -> 10 Gbit/s, 0.5 ms -> server host",
		Shows: "an edge load balancer in front of an internal one: two hosts' autotuned socket queues between client and server, each hop's share on the map",
		hop:   haproxyHop("haproxy-tcp.cfg", "tcp"),
		front: []hopFunc{nginxHop("nginx-tcp.conf", "tcp")},
		wan: &wanSpec{hosts: []string{"client", "nginx", "haproxy", "server"}, links: []netlab.Link{
			{A: "client", B: "nginx", Rate: 1_000_000_000, RTT: 20 * time.Millisecond},
			{A: "nginx", B: "haproxy", Rate: 10_000_000_000, RTT: 500 * time.Microsecond},
			{A: "haproxy", B: "server", Rate: 10_000_000_000, RTT: 500 * time.Microsecond}}},
	},
	{
		Name: "wan-router", Scheme: "ws", Needs: "caddy", Path: "client host -> 1 Gbit/s, 20 ms -> router host (Caddy terminating TLS, wss) -> 10 Gbit/s, 0.5 ms -> server host",
		Shows: "the Cloud Foundry shape: a Go reverse proxy in front of the app; after the WebSocket upgrade it copies through a 32 KiB buffer, and its host's autotuned sockets hold the rest",
		hop:   caddyHop("caddy-wss.Caddyfile", "wss"),
		wan: &wanSpec{hosts: []string{"client", "caddy", "server"}, links: []netlab.Link{
			{A: "client", B: "caddy", Rate: 1_000_000_000, RTT: 20 * time.Millisecond},
			{A: "caddy", B: "server", Rate: 10_000_000_000, RTT: 500 * time.Microsecond}}},
	},
}

// Lookup finds a profile by name.
func Lookup(name string) (Profile, bool) {
	for _, p := range Profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}

// ErrMissing marks a profile that cannot run on this machine: a program is
// not installed or not built. Its message says how to get it.
var ErrMissing = errors.New("missing")

// Missing reports what this machine lacks to run the profile (wrapping
// ErrMissing), or nil. bin is the directory with the lab's binaries. A
// third-party hop needs bp-sockets too, for its kernel queues.
func (p Profile) Missing(bin string) error {
	if p.also != "" {
		if err := (Profile{Needs: p.also}).Missing(bin); err != nil {
			return err
		}
	}
	if err := p.needsRoot(); err != nil {
		return err
	}
	if p.Needs != "" && p.Needs != "bp-relay" {
		if _, err := os.Stat(filepath.Join(bin, "bp-sockets")); err != nil {
			return fmt.Errorf("%w: bp-sockets is not built (it watches the %s hop's sockets for the byte map)", ErrMissing, p.Needs)
		}
	}
	switch p.Needs {
	case "caddy":
		if _, err := exec.LookPath("caddy"); err != nil {
			return fmt.Errorf("%w: caddy is not installed; %s", ErrMissing, CaddyInstallHint)
		}
	case "bp-relay":
		if _, err := os.Stat(filepath.Join(bin, "bp-relay")); err != nil {
			return fmt.Errorf("%w: bp-relay is not built (cmd/bp-relay does not exist or does not build yet)", ErrMissing)
		}
	case "haproxy":
		if _, err := exec.LookPath("haproxy"); err != nil {
			return fmt.Errorf("%w: haproxy is not installed; %s", ErrMissing, InstallHint)
		}
	case "nginx":
		if _, err := exec.LookPath("nginx"); err != nil {
			return fmt.Errorf("%w: nginx is not installed; %s", ErrMissing, InstallHint)
		}
		if p.Scheme == "tcp" {
			if _, err := nginxGlobals(); err != nil {
				return err
			}
		}
	}
	return nil
}

// hop is a running hop between client and server.
type hop struct {
	name       string // "bp-relay", "haproxy", "nginx", "caddy"
	proc       *process
	metricsURL string // Prometheus /metrics, or nginx's stub_status
	livePage   bool   // metricsURL is a Prometheus page worth polling during the run
	accessLog  string // nginx, Caddy: one JSON line per connection or request
	socketsURL string // its bp-sockets sidecar's /metrics (third-party hops)
	// bufferMax and bufferNote describe an own buffer no live counter
	// shows (nginx, Caddy): the most it holds by configuration, and why.
	bufferMax  float64
	bufferNote string
	backend    string // HAProxy's backend towards bp-server: "" is bp_server
	// streams: the run is HTTP/2 streams (h2c, gRPC), requests whose
	// bodies the hop's access log counts, not a WebSocket upgrade whose
	// tunnel it does not.
	streams bool
}

// haproxyBackend is the HAProxy backend whose counters are the bytes out
// to bp-server (haproxy-grpc.cfg names its own).
func (h *hop) haproxyBackend() string {
	if h.backend != "" {
		return h.backend
	}
	return "bp_server"
}

// relayHop starts bp-relay in front of the server's TCP listener.
func relayHop(buffer string) func(context.Context, *run, serverAddrs) (string, *hop, error) {
	return func(ctx context.Context, r *run, srv serverAddrs) (string, *hop, error) {
		var addrs [3]string
		for i := range addrs {
			a, err := r.listenAddr("relay")
			if err != nil {
				return "", nil, err
			}
			addrs[i] = a
		}
		listen, httpAddr, metricsAddr := addrs[0], addrs[1], addrs[2]
		p, err := r.start("bp-relay", filepath.Join(r.opts.Bin, "bp-relay"), []string{
			"--tcp-addr", listen, "--http-addr", httpAddr, "--upstream", "tcp://" + srv.tcp,
			"--buffer", buffer, "--metrics-addr", metricsAddr, "--log-format", "json",
		}, nil, nil)
		if err != nil {
			return "", nil, err
		}
		h := &hop{name: "bp-relay", proc: p, metricsURL: "http://" + metricsAddr + "/metrics", livePage: true}
		if err := waitHTTP(ctx, p, "http://"+metricsAddr+"/healthz", 10*time.Second); err != nil {
			return "", h, err
		}
		return "tcp://" + listen, h, nil
	}
}

// haproxyHop runs HAProxy in the foreground with a config from
// deploy/haproxy, its addresses given through the environment.
func haproxyHop(file, scheme string) func(context.Context, *run, serverAddrs) (string, *hop, error) {
	return func(ctx context.Context, r *run, srv serverAddrs) (string, *hop, error) {
		listen, err := r.listenAddr("haproxy")
		if err != nil {
			return "", nil, err
		}
		stats, err := r.listenAddr("haproxy")
		if err != nil {
			return "", nil, err
		}
		upstream := srv.forScheme(scheme)
		p, err := r.start("haproxy", "haproxy",
			[]string{"-f", filepath.Join(r.opts.Deploy, "haproxy", file), "-db"},
			HAProxyEnv(listen, upstream, stats), nil)
		if err != nil {
			return "", nil, err
		}
		h := &hop{name: "haproxy", proc: p, metricsURL: "http://" + stats + "/metrics", livePage: true}
		if scheme == "grpc" {
			h.backend = "bp_grpc"
		}
		if err := waitHTTP(ctx, p, h.metricsURL, 10*time.Second); err != nil {
			return "", h, err
		}
		return target(scheme, listen), h, r.startSockets(ctx, h, listen, upstream)
	}
}

// HAProxyEnv is the environment the configs in deploy/haproxy read.
func HAProxyEnv(listen, upstream, stats string) []string {
	return []string{"BP_HAPROXY_LISTEN=" + listen, "BP_HAPROXY_UPSTREAM=" + upstream, "BP_HAPROXY_STATS=" + stats}
}

// nginxHop renders a config from deploy/nginx into a prefix directory of
// its own and runs nginx in the foreground there.
func nginxHop(file, scheme string) func(context.Context, *run, serverAddrs) (string, *hop, error) {
	return func(ctx context.Context, r *run, srv serverAddrs) (string, *hop, error) {
		listen, err := r.listenAddr("nginx")
		if err != nil {
			return "", nil, err
		}
		status, err := r.listenAddr("nginx")
		if err != nil {
			return "", nil, err
		}
		upstream := srv.forScheme(scheme)
		prefix := filepath.Join(r.dir, "nginx")
		conf, err := RenderNginx(filepath.Join(r.opts.Deploy, "nginx", file), prefix, NginxVars(listen, upstream, status))
		if err != nil {
			return "", nil, err
		}
		args, err := NginxArgs(prefix, conf, false)
		if err != nil {
			return "", nil, err
		}
		p, err := r.start("nginx", "nginx", args, nil, nil)
		if err != nil {
			return "", nil, err
		}
		h := &hop{name: "nginx", proc: p, metricsURL: "http://" + status + "/nginx_status",
			accessLog: filepath.Join(prefix, "bp-access.log"), bufferMax: 16 << 10,
			bufferNote: "not measured: nginx counts a connection's bytes only when it ends; at most proxy_buffer_size (16k) per direction"}
		if scheme == "grpc" {
			// nginx-grpc.conf: the stream window nginx advertises
			// (http2_body_preread_size) into its request-body buffer
			// (client_body_buffer_size), both 64k.
			h.bufferMax, h.streams = 128<<10, true
			h.bufferNote = "not measured: nginx logs a request's bytes when it ends; at most client_body_buffer_size (64k) plus the 64k stream window it advertises (http2_body_preread_size)"
		}
		if err := waitHTTP(ctx, p, h.metricsURL, 10*time.Second); err != nil {
			return "", h, err
		}
		return target(scheme, listen), h, r.startSockets(ctx, h, listen, upstream)
	}
}

// NginxVars are the placeholders of the templates in deploy/nginx.
func NginxVars(listen, upstream, status string) map[string]string {
	return map[string]string{"BP_NGINX_LISTEN": listen, "BP_NGINX_UPSTREAM": upstream, "BP_NGINX_STATUS": status}
}

var placeholder = regexp.MustCompile(`\$\{(BP_[A-Z0-9_]+)\}`)

// RenderNginx fills the ${BP_...} placeholders of the template at path and
// writes the result into the prefix directory (created, readable by nginx's
// workers), returning the rendered file's path. nginx's own $variables are
// left alone. A placeholder without a value is an error.
func RenderNginx(path, prefix string, vars map[string]string) (string, error) {
	tmpl, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("nginx template: %w", err)
	}
	var missing []string
	out := placeholder.ReplaceAllStringFunc(string(tmpl), func(m string) string {
		name := placeholder.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("nginx template %s: no value for %s", path, strings.Join(missing, ", "))
	}
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return "", fmt.Errorf("nginx prefix: %w", err)
	}
	os.Chmod(prefix, 0o755)
	conf := filepath.Join(prefix, filepath.Base(path))
	if err := os.WriteFile(conf, []byte(out), 0o644); err != nil {
		return "", fmt.Errorf("nginx config: %w", err)
	}
	return conf, nil
}

// NginxArgs are nginx's arguments to run conf in the foreground under
// prefix (or only test it), loading the stream module when this nginx has it
// as a dynamic module.
func NginxArgs(prefix, conf string, test bool) ([]string, error) {
	globals := "daemon off;"
	if b, _ := os.ReadFile(conf); strings.Contains(string(b), "stream {") {
		load, err := nginxGlobals()
		if err != nil {
			return nil, err
		}
		globals += " " + load
	}
	args := []string{"-p", prefix, "-c", conf, "-e", "stderr", "-g", globals}
	if test {
		args = append([]string{"-t"}, args...)
	}
	return args, nil
}

var (
	nginxOnce sync.Once
	nginxLoad string
	nginxErr  error
)

// nginxGlobals returns the load_module directive for the stream module
// when nginx was built with it as a dynamic module (Debian), "" when it is
// built in, or an error when it is not installed.
func nginxGlobals() (string, error) {
	nginxOnce.Do(func() {
		out, err := exec.Command("nginx", "-V").CombinedOutput()
		if err != nil {
			nginxErr = fmt.Errorf("nginx -V: %w", err)
			return
		}
		v := string(out)
		switch {
		case strings.Contains(v, "--with-stream=dynamic"):
			dir := "/usr/lib/nginx/modules"
			if m := regexp.MustCompile(`--modules-path=(\S+)`).FindStringSubmatch(v); m != nil {
				dir = m[1]
			}
			mod := filepath.Join(dir, "ngx_stream_module.so")
			if _, err := os.Stat(mod); err != nil {
				nginxErr = fmt.Errorf("%w: nginx's stream module is not installed (%s); install with: sudo apt-get install -y libnginx-mod-stream", ErrMissing, mod)
				return
			}
			nginxLoad = "load_module " + mod + ";"
		case strings.Contains(v, "--with-stream"):
		default:
			nginxErr = fmt.Errorf("%w: this nginx has no stream module; %s", ErrMissing, InstallHint)
		}
	})
	return nginxLoad, nginxErr
}

func target(scheme, addr string) string {
	switch scheme {
	case "ws", "wss":
		return scheme + "://" + addr + "/ws"
	case "h2c":
		return "h2c://" + addr + "/h2"
	case "grpc":
		return "grpc://" + addr
	}
	return "tcp://" + addr
}
