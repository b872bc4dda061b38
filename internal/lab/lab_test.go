package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseTextSums(t *testing.T) {
	page := `# HELP haproxy_frontend_bytes_in_total Total number of request bytes since process started
# TYPE haproxy_frontend_bytes_in_total counter
haproxy_frontend_bytes_in_total{proxy="bp_in"} 25233447
haproxy_frontend_bytes_in_total{proxy="stats"} 1200
bp_bytes_read_total{protocol="tcp"} 100
bp_bytes_read_total{protocol="websocket"} 23
bp_write_blocked_seconds_sum{protocol="tcp"} 1.5e+00
go_goroutines 12
odd{a="x,y=\"z\"",b="2"} 7 1700000000000
`
	ss, err := parseText(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		match map[string]string
		want  float64
		found bool
	}{
		{"haproxy_frontend_bytes_in_total", map[string]string{"proxy": "bp_in"}, 25233447, true}, // one proxy of two
		{"haproxy_frontend_bytes_in_total", nil, 25234647, true},                                 // all proxies
		{"bp_bytes_read_total", nil, 123, true},                                                  // summed over protocols
		{"bp_write_blocked_seconds_sum", nil, 1.5, true},                                         // exponent notation
		{"go_goroutines", nil, 12, true},                                                         // no labels
		{"odd", map[string]string{"b": "2"}, 7, true},                                            // quoted comma and equals, timestamp
		{"bp_stalls_total", nil, 0, false},                                                       // absent
		{"haproxy_frontend_bytes_in_total", map[string]string{"proxy": "nope"}, 0, false},        // no such label value
	} {
		got, found := ss.sum(c.name, c.match)
		if got != c.want || found != c.found {
			t.Errorf("sum(%s, %v) = %v, %v; want %v, %v", c.name, c.match, got, found, c.want, c.found)
		}
	}
}

func TestRenderNginx(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "t.conf")
	os.WriteFile(tmpl, []byte("listen ${BP_NGINX_LISTEN};\nproxy_set_header Upgrade $http_upgrade;\nx ${host};\n"), 0o644)

	conf, err := RenderNginx(tmpl, filepath.Join(dir, "prefix"), map[string]string{"BP_NGINX_LISTEN": "127.0.0.1:9"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(conf)
	want := "listen 127.0.0.1:9;\nproxy_set_header Upgrade $http_upgrade;\nx ${host};\n"
	if string(b) != want {
		t.Errorf("rendered:\n%s\nwant:\n%s", b, want)
	}

	_, err = RenderNginx(tmpl, filepath.Join(dir, "prefix2"), nil)
	if err == nil || !strings.Contains(err.Error(), "BP_NGINX_LISTEN") {
		t.Errorf("a placeholder without a value: err %v, want one naming BP_NGINX_LISTEN", err)
	}
}

func TestProfilesComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Profiles {
		if seen[p.Name] {
			t.Errorf("profile %s twice", p.Name)
		}
		seen[p.Name] = true
		if p.Scheme != "tcp" && p.Scheme != "ws" && p.Scheme != "h2c" && p.Scheme != "grpc" {
			t.Errorf("profile %s: scheme %q", p.Name, p.Scheme)
		}
		if (p.Needs == "") != (p.hop == nil) {
			t.Errorf("profile %s: needs %q but hop set %v", p.Name, p.Needs, p.hop != nil)
		}
	}
	for _, name := range []string{"direct", "relay-stream", "relay-buffered", "haproxy-tcp", "haproxy-ws", "nginx-ws", "nginx-tcp", "h2-direct", "haproxy-h2", "caddy-h2", "grpc-direct", "nginx-grpc", "haproxy-grpc"} {
		if _, ok := Lookup(name); !ok {
			t.Errorf("no profile %s", name)
		}
	}
}
