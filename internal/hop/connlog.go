package hop

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/ratelog"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// Connection lines are bounded like refusals, since a peer that connects
// and closes in a loop would otherwise write two lines per cycle, without
// end: the first ConnLogBurst connections are logged, then ConnLogRate a
// second. A connection is logged whole (opened and closed) or not at all,
// so every logged "connection opened" has its end; the next logged one
// says how many were left out ("suppressed"). Failures of connections
// left out are still logged, at ratelog's rate per reason.
const (
	ConnLogBurst = 50
	ConnLogRate  = 10 // connections a second, after the burst
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

	conns *ratelog.Logger // nil: every connection is logged
	fails *ratelog.Logger // the failures of connections left out (set with conns)
}

// NewConnLogger returns the rate-limited connection log of a binary.
func NewConnLogger(log *slog.Logger, alwaysVia bool) ConnLogger {
	return ConnLogger{Log: log, AlwaysVia: alwaysVia,
		conns: ratelog.NewRate(log, time.Second/ConnLogRate, ConnLogBurst), fails: ratelog.New(log)}
}

// ConnLog is one connection's logger: every line carries its peer and
// protocol and, when it sent a hello, its run, direction and via.
type ConnLog struct {
	*slog.Logger
	hello      string // "none", "bp" or "legacy"
	logged     bool   // this connection's opened and closed lines are written
	suppressed int64  // connections left out before this one
	fails      *ratelog.Logger
}

// With returns the logger of the connection c from peer, with its hello
// (nil: hello-less). It decides here whether this connection is logged.
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
	if sc, ok := c.(flow.StreamConn); ok {
		// Streams of one connection share its peer: the stream tells them apart.
		attrs = append(attrs, "stream", sc.StreamIndex())
	}
	cl := ConnLog{Logger: l.Log.With(attrs...), hello: kind, logged: true, fails: l.fails}
	if l.conns != nil {
		cl.logged, cl.suppressed = l.conns.Allow("connection")
	}
	return cl
}

// Opened logs "connection opened" with the kind of hello and fields, and
// how many connections before it were left out of the log.
func (c ConnLog) Opened(fields ...any) {
	if !c.logged {
		return
	}
	fields = append([]any{"hello", c.hello}, fields...)
	if c.suppressed > 0 {
		fields = append(fields, "suppressed", c.suppressed)
	}
	c.Info("connection opened", fields...)
}

// Closed logs how the connection ended, with fields: closed, closed at
// shutdown (its context was cancelled), or failed (a warning, with the
// error's metric reason and the error). A connection left out of the log
// logs only a failure, at ratelog's rate per reason.
func (c ConnLog) Closed(err error, fields ...any) {
	switch {
	case !c.logged && (err == nil || errors.Is(err, context.Canceled)):
	case !c.logged:
		reason := flow.ErrorReason(err)
		if ok, suppressed := c.fails.Allow(reason); ok {
			fields = append(fields, "reason", reason, "err", err)
			if suppressed > 0 {
				fields = append(fields, "suppressed", suppressed)
			}
			c.Warn("connection failed", fields...)
		}
	case err == nil:
		c.Info("connection closed", fields...)
	case errors.Is(err, context.Canceled):
		c.Info("connection closed at shutdown", fields...)
	default:
		c.Warn("connection failed", append(fields, "reason", flow.ErrorReason(err), "err", err)...)
	}
}

// discard is the logger of the lines of connections left out of the log.
var discard = slog.New(slog.DiscardHandler)

// Lines is the logger for a connection's lines between opened and closed
// (progress, receive window): the connection's, or one that drops them
// when the connection is left out of the log, so a flood of connections
// cannot flood the log through these either.
func (c ConnLog) Lines() *slog.Logger {
	if !c.logged {
		return discard
	}
	return c.Logger
}
