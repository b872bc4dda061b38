package hop

import (
	"testing"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

// TestFitConnections: the default --max-connections is lowered to the most
// a listener may hold with every listener's connections, the HTTP ones
// and the margin inside the file descriptor limit, and no more.
func TestFitConnections(t *testing.T) {
	limits := config.Limits{MaxConnections: 20000, MaxHTTPConnections: 1000, MaxConnectionsDefault: true}
	tests := []struct {
		name          string
		raw           int // raw TCP and gRPC listeners
		perConn       int
		httpListeners int
		soft          uint64
		want          int
	}{
		// bp-server under ulimit -n 20000: 2 x 9468 + 1000 + 64 = 20000.
		{"server", 1, 1, 1, 20000, 9468},
		// bp-relay: two fds a connection, a second HTTP listener (its
		// --metrics-addr): 2 x 2 x 4484 + 2 x 1000 + 64 = 20000.
		{"relay", 1, 2, 2, 20000, 4484},
		// No raw TCP listener, WebSocket only: 18936 + 1000 + 64.
		{"websocket only", 0, 1, 1, 20000, 18936},
		// bp-server with its gRPC listener too: 3 x 6312 + 1000 + 64 = 20000.
		{"server with grpc", 2, 1, 1, 20000, 6312},
		// Not even one connection a listener fits beside the HTTP ones.
		{"nothing fits", 1, 1, 1, 1000, 0},
		// The last connection fits to the descriptor.
		{"exact", 1, 1, 1, 1066, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fitConnections(limits, tt.raw, tt.perConn, tt.httpListeners, tt.soft)
			if got != tt.want {
				t.Fatalf("fit %d, want %d", got, tt.want)
			}
			if got == 0 {
				return
			}
			l := limits
			l.MaxConnections = got
			need, _ := fdNeed(l, tt.raw, tt.perConn, tt.httpListeners)
			l.MaxConnections++
			more, _ := fdNeed(l, tt.raw, tt.perConn, tt.httpListeners)
			if uint64(need) > tt.soft || uint64(more) <= tt.soft {
				t.Errorf("at %d the limits need %d, at one more %d: want the first within %d and the second beyond", got, need, more, tt.soft)
			}
		})
	}
	if got := fitConnections(config.Limits{MaxConnections: 20000}, 1, 1, 1, 20000); got != 0 {
		t.Errorf("HTTP connections unbounded: fit %d, want 0 (nothing to fit against)", got)
	}
}
