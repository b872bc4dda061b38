package hop

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// protoConn is a flow.Conn of which the logger uses only the protocol.
type protoConn struct {
	flow.Conn
	protocol flow.Protocol
}

func (c protoConn) Protocol() flow.Protocol { return c.protocol }

// TestConnLog pins the connection lines both binaries write, which the
// end-to-end tests read: messages, levels and keys.
func TestConnLog(t *testing.T) {
	hello := &flow.Hello{RunID: "r1", Direction: "up"}
	via := &flow.Hello{RunID: "r2", Direction: "up", Via: []string{"hop-a"}}
	legacy := &flow.Hello{Legacy: true}
	tests := []struct {
		name      string
		alwaysVia bool
		hello     *flow.Hello
		err       error
		attrs     string // on every line, in order
		kind      string // the opened line's hello
		closed    string // the last line's level and message
		reason    string // the failed line's reason
	}{
		{
			// Hello-less: peer and protocol only.
			name: "no hello", attrs: "peer=p protocol=tcp", kind: "none",
			closed: `level=INFO msg="connection closed"`,
		},
		{
			// A hello without via: bp-server leaves via out.
			name: "hello", hello: hello, err: context.Canceled, attrs: "peer=p protocol=tcp run=r1 direction=up", kind: "bp",
			closed: `level=INFO msg="connection closed at shutdown"`,
		},
		{
			// bp-relay logs via even when empty; a failure is a warning
			// with its reason.
			name: "always via", alwaysVia: true, hello: hello, err: flow.ErrIdle,
			attrs: "peer=p protocol=tcp run=r1 direction=up via=[]", kind: "bp",
			closed: `level=WARN msg="connection failed"`, reason: "reason=idle err=",
		},
		{
			// A via list, on either binary.
			name: "via", hello: via, attrs: "peer=p protocol=tcp run=r2 direction=up via=[hop-a]", kind: "bp",
			closed: `level=INFO msg="connection closed"`,
		},
		{
			// The 2018 hello.
			name: "legacy", hello: legacy, attrs: `peer=p protocol=tcp run="" direction=""`, kind: "legacy",
			closed: `level=INFO msg="connection closed"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := ConnLogger{Log: slog.New(slog.NewTextHandler(&buf, nil)), AlwaysVia: tt.alwaysVia}
			log := l.With("p", protoConn{protocol: flow.TCP}, tt.hello)
			log.Opened()
			log.Closed(tt.err, "bytes", 1)
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
			}
			if want := `level=INFO msg="connection opened" ` + tt.attrs + " hello=" + tt.kind; !strings.HasSuffix(lines[0], want) {
				t.Errorf("opened line %q, want it to end %q", lines[0], want)
			}
			want := tt.closed + " " + tt.attrs + " bytes=1"
			if !strings.Contains(lines[1], want) || !strings.Contains(lines[1], tt.reason) {
				t.Errorf("closed line %q, want %q and %q", lines[1], want, tt.reason)
			}
		})
	}
}

// TestConnLogJSON checks the opened line's extra fields keep their keys
// after "hello", as bp-server's announced_bytes.
func TestConnLogJSON(t *testing.T) {
	var buf bytes.Buffer
	l := ConnLogger{Log: slog.New(slog.NewJSONHandler(&buf, nil))}
	l.With("p", protoConn{protocol: flow.WebSocket}, nil).Opened("announced_bytes", int64(0))
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"msg": "connection opened", "level": "INFO", "peer": "p", "protocol": "websocket", "hello": "none", "announced_bytes": float64(0)} {
		if line[k] != want {
			t.Errorf("%s = %v, want %v (%s)", k, line[k], want, buf.String())
		}
	}
}

// TestConnLogBounded: connection lines are bounded (the burst, then the
// rate), each logged connection has both lines, the next logged one says
// how many were left out, and failures of unlogged ones are still logged
// at ratelog's rate.
func TestConnLogBounded(t *testing.T) {
	var buf bytes.Buffer
	l := NewConnLogger(slog.New(slog.NewTextHandler(&buf, nil)), false)
	const cycles = 1000
	for i := range cycles {
		log := l.With("p", protoConn{protocol: flow.TCP}, nil)
		log.Opened()
		var err error
		if i%2 == 0 {
			err = flow.ErrIdle
		}
		log.Closed(err)
	}
	opened := strings.Count(buf.String(), `msg="connection opened"`)
	closed := strings.Count(buf.String(), `msg="connection closed"`)
	failed := strings.Count(buf.String(), `msg="connection failed"`)
	if opened < ConnLogBurst || opened > ConnLogBurst+5 {
		t.Errorf("%d opened lines for %d cycles, want the burst of %d", opened, cycles, ConnLogBurst)
	}
	if logged := closed + failed; logged < opened || logged > opened+10 {
		t.Errorf("%d opened, %d closed and %d failed lines: want every opened one closed, and at most a few more failures", opened, closed, failed)
	}
	time.Sleep(2 * time.Second / ConnLogRate)
	buf.Reset()
	l.With("p", protoConn{protocol: flow.TCP}, nil).Opened()
	if !strings.Contains(buf.String(), "suppressed=") {
		t.Errorf("the next logged connection does not say how many were left out: %s", buf.String())
	}
}
