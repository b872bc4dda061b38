package hop

import (
	"context"
	"errors"
	"log/slog"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// ConnLogger logs each connection's opening and end in the words both
// binaries use, which the end-to-end tests read: "connection opened",
// then "connection closed", "connection closed at shutdown" or
// "connection failed".
type ConnLogger struct {
	Log *slog.Logger
	// AlwaysVia logs the hello's via list even when it is empty (bp-relay,
	// whose lines show the path a stream came by); otherwise only a list
	// that is not empty is logged.
	AlwaysVia bool
}

// ConnLog is one connection's logger: every line carries its peer and
// protocol and, when it sent a hello, its run, direction and via.
type ConnLog struct {
	*slog.Logger
	hello string // "none", "bp" or "legacy"
}

// With returns the logger of the connection c from peer, with its hello
// (nil: hello-less).
func (l ConnLogger) With(peer string, c flow.Conn, hello *flow.Hello) ConnLog {
	attrs := []any{"peer", peer, "protocol", c.Protocol()}
	kind := "none"
	if hello != nil {
		kind = "bp"
		if hello.Legacy {
			kind = "legacy"
		}
		attrs = append(attrs, "run", hello.RunID, "direction", hello.Direction)
		if l.AlwaysVia || len(hello.Via) > 0 {
			attrs = append(attrs, "via", hello.Via)
		}
	}
	return ConnLog{Logger: l.Log.With(attrs...), hello: kind}
}

// Opened logs "connection opened" with the kind of hello and fields.
func (c ConnLog) Opened(fields ...any) {
	c.Info("connection opened", append([]any{"hello", c.hello}, fields...)...)
}

// Closed logs how the connection ended, with fields: closed, closed at
// shutdown (its context was cancelled), or failed (a warning, with the
// error's metric reason and the error).
func (c ConnLog) Closed(err error, fields ...any) {
	switch {
	case err == nil:
		c.Info("connection closed", fields...)
	case errors.Is(err, context.Canceled):
		c.Info("connection closed at shutdown", fields...)
	default:
		c.Warn("connection failed", append(fields, "reason", flow.ErrorReason(err), "err", err)...)
	}
}
