package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheckHostOptions: a -link or -tcp-rmem/-tcp-wmem setting the
// profile cannot take is refused before anything is built, naming what
// the profile has; one it can take changes only what it names.
func TestCheckHostOptions(t *testing.T) {
	haproxy, _ := Lookup("wan-haproxy")
	direct, _ := Lookup("direct")
	for _, c := range []struct {
		p    Profile
		o    Options
		want string // in the error; "" for none
	}{
		{haproxy, Options{Links: []string{"client-haproxy=100mbit,40ms,0.1%"}}, ""},
		{haproxy, Options{TCPRmem: []string{"all=4096,131072,33554432"}, TCPWmem: []string{"haproxy=4096,16384,4194304"}}, ""},
		{haproxy, Options{Links: []string{"client-nginx=1gbit"}}, "this profile's links are client-haproxy, haproxy-server"},
		{haproxy, Options{TCPRmem: []string{"nginx=4096,131072,33554432"}}, "this profile's hosts are client, haproxy, server (or all)"},
		{haproxy, Options{TCPWmem: []string{"server=a,b,c"}}, `net.ipv4.tcp_wmem "server=a,b,c": "a": want a byte count`},
		{haproxy, Options{TCPRmem: []string{"server=1,2"}}, "want host=min,default,max"},
		{direct, Options{Links: []string{"client-server=1gbit"}}, "direct runs on loopback"},
		{direct, Options{}, ""},
	} {
		err := CheckHostOptions(c.p, c.o)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s %+v: %v", c.p.Name, c.o, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s %+v: %v, want %q", c.p.Name, c.o, err, c.want)
		}
	}
	spec, err := netSpec(haproxy.wan, Options{Links: []string{"client-haproxy=40ms"}, TCPRmem: []string{"haproxy=4096,131072,33554432"}})
	if err != nil {
		t.Fatal(err)
	}
	if l := spec.Links[0]; l.RTT != 40*time.Millisecond || l.Rate != 1_000_000_000 {
		t.Errorf("client-haproxy=40ms: %+v, want 1gbit (unchanged), 40ms", l)
	}
	if got := spec.Sysctls["haproxy"]["net.ipv4.tcp_rmem"]; got != "4096 131072 33554432" || len(spec.Sysctls) != 1 {
		t.Errorf("sysctls %v, want haproxy's tcp_rmem only", spec.Sysctls)
	}
	if err := CheckObserveLinks([]string{"client-haproxy=1ms"}); err == nil || !strings.Contains(err.Error(), "client-relay, relay-haproxy, haproxy-server") {
		t.Errorf("lab-observe -hosts: %v, want its links named", err)
	}
	if err := CheckObserveLinks([]string{"client-relay=100mbit,40ms"}); err != nil {
		t.Errorf("lab-observe -hosts, DEPLOY.md's link: %v", err)
	}
	fleetErr := CheckFleetOptions(Fleet{Clients: 2, Connections: 1, Servers: 2}, Options{Links: []string{"client2-haproxy=5ms", "haproxy-server3=1ms"}})
	if fleetErr == nil || !strings.Contains(fleetErr.Error(), "haproxy-server1, haproxy-server2") {
		t.Errorf("fleet: %v, want its links named", fleetErr)
	}
}

// TestHopNumbersStreams: over HTTP/2 streams (nginx-grpc, caddy-h2) an
// access log counts each request's body, so the hop line calls it the
// request from the client and says nothing of an upgraded connection; a
// WebSocket run keeps the note. The logs are lines as the configs in
// deploy/ write them (nginx-grpc.conf's log_format, Caddy's JSON log).
func TestHopNumbersStreams(t *testing.T) {
	dir := t.TempDir()
	nginxLog := filepath.Join(dir, "nginx.log")
	os.WriteFile(nginxLog, []byte(`{"time":"t","request":"POST /backpressure.v1.Backpressure/Upload HTTP/2.0","status":200,"request_length":61809069,"bytes_sent":1951,"upstream_bytes_sent":"61882268","upstream_bytes_received":"67913","request_time":10.1}`+"\n"), 0o644)
	caddyLog := filepath.Join(dir, "caddy.log")
	os.WriteFile(caddyLog, []byte(`{"msg":"handled request","bytes_read":64558048,"size":3415}`+"\n"), 0o644)
	ctx := context.Background()
	for _, streams := range []bool{true, false} {
		// Port 1 on loopback: stub_status does not answer, so the log is
		// read at once.
		n, err := (&hop{name: "nginx", accessLog: nginxLog, metricsURL: "http://127.0.0.1:1/nginx_status", streams: streams}).nginxNumbers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		label, want := n.Numbers[0].Label, map[bool]string{true: "request from client", false: "upgrade request from client"}[streams]
		if n.Numbers[0].Key != "request_length" || n.Numbers[0].Value != 61809069 || label != want {
			t.Errorf("nginx, streams %v: %+v, want request_length 61809069 labelled %q", streams, n.Numbers[0], want)
		}
		if (len(n.Notes) == 0) != streams {
			t.Errorf("nginx, streams %v: notes %q", streams, n.Notes)
		}
		c, err := (&hop{name: "caddy", accessLog: caddyLog, streams: streams}).caddyNumbers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := c.Value("bytes_in"); v != 64558048 || (len(c.Notes) == 0) != streams {
			t.Errorf("caddy, streams %v: in %v, notes %q", streams, v, c.Notes)
		}
	}
}
