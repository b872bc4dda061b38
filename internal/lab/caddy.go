package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/pki"
)

// CaddyVersion is the Caddy release scripts/install-test-deps builds from
// the Go module proxy; the lab runs whichever caddy is on PATH.
const CaddyVersion = "v2.11.9"

// CaddyInstallHint says how to get Caddy: built from its Go module, like
// any Go program, since Debian's package lags behind.
const CaddyInstallHint = "install with: GOBIN=/usr/local/bin go install github.com/caddyserver/caddy/v2/cmd/caddy@" + CaddyVersion + " (or sudo scripts/install-test-deps)"

// caddyHop runs Caddy in the foreground with a Caddyfile from deploy/caddy,
// its addresses given through the environment, and its data and config
// directories inside the run's directory so that it touches nothing of the
// user's. The scheme is the client's: with wss Caddy terminates TLS with
// a certificate for its listen address from a throwaway CA in the run's
// directory, which the client is given (--ca-file); h2c is HTTP/2 runs.
func caddyHop(file, scheme string) hopFunc {
	return func(ctx context.Context, r *run, srv serverAddrs) (string, *hop, error) {
		listen, err := r.listenAddr("caddy")
		if err != nil {
			return "", nil, err
		}
		admin, err := r.listenAddr("caddy")
		if err != nil {
			return "", nil, err
		}
		accessLog := filepath.Join(r.dir, "caddy-access.log")
		env := append(CaddyEnv(listen, srv.http, admin, accessLog),
			"XDG_DATA_HOME="+filepath.Join(r.dir, "caddy-data"), "XDG_CONFIG_HOME="+filepath.Join(r.dir, "caddy-config"))
		if scheme == "wss" {
			ip, _, _ := net.SplitHostPort(listen)
			certs, err := pki.Write(r.dir, "bp-lab caddy", ip)
			if err != nil {
				return "", nil, fmt.Errorf("caddy certificate: %w", err)
			}
			env = append(env, CaddyTLSEnv(certs.CertFile, certs.KeyFile)...)
			r.caFile = certs.CAFile
		}
		conf, err := r.caddyConfig(file, listen)
		if err != nil {
			return "", nil, err
		}
		p, err := r.start("caddy", "caddy", []string{"run", "--config", conf, "--adapter", "caddyfile"}, env, nil)
		if err != nil {
			return "", nil, err
		}
		h := &hop{name: "caddy", proc: p, metricsURL: "http://" + admin + "/metrics", accessLog: accessLog,
			bufferMax:  32 << 10,
			bufferNote: "not measured: Caddy counts no bytes of an upgraded connection; at most stream_buffer_size (32 KiB) per direction"}
		if scheme == "h2c" {
			// Go's HTTP/2 transport reads a request body towards the
			// server in chunks of up to 512 KiB (its frame scratch buffer,
			// bounded by the server's 1 MiB max frame size), which wait
			// there on the server's stream window.
			h.bufferMax, h.streams = 1<<20+512<<10+32<<10, true
			h.bufferNote = "not measured: Go's HTTP/2 server under Caddy holds up to its stream window (1 MiB) unread per stream, the proxy's copy 32 KiB, and Go's HTTP/2 transport's body chunk towards the server up to 512 KiB"
		}
		if err := waitHTTP(ctx, p, h.metricsURL, 15*time.Second); err != nil {
			return "", h, err
		}
		return target(scheme, listen), h, r.startSockets(ctx, h, listen, srv.http)
	}
}

// caddyConfig is the Caddyfile to run: deploy/caddy's own on loopback; on
// a host of its own a copy in the run's directory whose "bind 127.0.0.1"
// names the host's address instead, as loopback is not where the client
// comes from.
func (r *run) caddyConfig(file, listen string) (string, error) {
	path := filepath.Join(r.opts.Deploy, "caddy", file)
	if r.net == nil {
		return path, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("caddy config: %w", err)
	}
	ip, _, _ := net.SplitHostPort(listen)
	out := filepath.Join(r.dir, file)
	return out, os.WriteFile(out, []byte(strings.ReplaceAll(string(b), "bind 127.0.0.1", "bind "+ip)), 0o644)
}

// CaddyEnv is the environment the Caddyfiles in deploy/caddy read.
func CaddyEnv(listen, upstream, admin, accessLog string) []string {
	return []string{"BP_CADDY_LISTEN=" + listen, "BP_CADDY_UPSTREAM=" + upstream,
		"BP_CADDY_ADMIN=" + admin, "BP_CADDY_ACCESS_LOG=" + accessLog}
}

// CaddyTLSEnv is the certificate and key caddy-wss.Caddyfile serves.
func CaddyTLSEnv(cert, key string) []string {
	return []string{"BP_CADDY_CERT=" + cert, "BP_CADDY_KEY=" + key}
}

// caddyNumbers reads Caddy's access log, one JSON line per request when it
// ends: for a WebSocket, when the tunnel closes. Caddy logs the request
// body it read and the response it wrote, neither of which is the tunnel's
// bytes, so the hop line says so.
func (h *hop) caddyNumbers(ctx context.Context) (Hop, error) {
	lines := settledLog(ctx, h.accessLog, func() bool { return true })
	out := Hop{Name: h.name, Source: h.accessLog}
	var reqs []map[string]any
	for _, l := range lines {
		if l["msg"] == "handled request" {
			reqs = append(reqs, l)
		}
	}
	out.Numbers = append(out.Numbers, Number{Key: "requests", Label: "requests logged", Value: float64(len(reqs))})
	if v, ok := sumField(reqs, "bytes_read"); ok && v > 0 {
		out.Numbers = append(out.Numbers, Number{Key: "bytes_in", Label: "in from client", Unit: "bytes", Value: v})
	}
	if v, ok := sumField(reqs, "size"); ok && v > 0 {
		out.Numbers = append(out.Numbers, Number{Key: "bytes_out", Label: "out to client", Unit: "bytes", Value: v})
	}
	if !h.streams { // an HTTP/2 stream is a request whose body Caddy counts
		out.Notes = append(out.Notes, "Caddy counts no bytes of an upgraded connection: its access log has the "+
			"upgrade request only; bp-sockets beside it shows its kernel queues")
	}
	return out, nil
}
