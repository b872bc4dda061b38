package flow_test

import (
	"errors"
	"testing"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

func TestParseTarget(t *testing.T) {
	cases := []struct {
		raw  string
		want flow.Target
		err  string // "" for none
	}{
		// TCP: host:port to dial.
		{"tcp://127.0.0.1:8081", flow.Target{Protocol: flow.TCP, Addr: "127.0.0.1:8081"}, ""},
		// TLS over TCP.
		{"tls://example.com:443", flow.Target{Protocol: flow.TCP, Addr: "example.com:443", TLS: true}, ""},
		// WebSocket: the whole URL.
		{"ws://localhost:8080/ws", flow.Target{Protocol: flow.WebSocket, Addr: "ws://localhost:8080/ws"}, ""},
		{"wss://example.com/ws", flow.Target{Protocol: flow.WebSocket, Addr: "wss://example.com/ws", TLS: true}, ""},
		// TCP needs a port.
		{"tcp://127.0.0.1", flow.Target{}, "want tcp://host:port"},
		{"tls://", flow.Target{}, "want tls://host:port"},
		// WebSocket needs a host.
		{"ws:///ws", flow.Target{}, "want ws://host:port/ws"},
		// Unknown schemes, no scheme.
		{"http://x:1", flow.Target{}, `unknown scheme "http"`},
		{"localhost", flow.Target{}, `unknown scheme ""`},
		// No URL at all.
		{"127.0.0.1:8081", flow.Target{}, "not a URL"},
	}
	for _, c := range cases {
		got, err := flow.ParseTarget(c.raw)
		var te flow.TargetError
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%q: %+v, %v; want %+v", c.raw, got, err, c.want)
		case c.err != "" && (err == nil || err.Error() != c.err || !errors.As(err, &te)):
			t.Errorf("%q: error %v, want TargetError %q", c.raw, err, c.err)
		}
	}
}
