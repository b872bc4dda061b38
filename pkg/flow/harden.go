package flow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Hardening: what a listener does with peers that misbehave. See
// docs/SAFETY.md for the limits, their defaults and how they interact with
// deliberate pauses.

// DefaultMaxMessageSize is the largest WebSocket message a peer may send by
// default: one payload message of the largest size (MaxPayloadSize).
const DefaultMaxMessageSize = MaxPayloadSize

// DefaultControlWriteTimeout bounds each control message (ack, fin) written
// on a connection on which this side writes no payload: a peer that never
// reads its acks cannot hold the session forever. When this side writes
// payload too, control messages share the direction with it and wait behind
// its backpressure, which is what the lab measures, so they get no deadline.
const DefaultControlWriteTimeout = 30 * time.Second

// RejectReasons are the reasons a listener refuses a connection before
// serving it: a small fixed set for bp_connections_rejected_total.
var RejectReasons = []string{"limit", "origin", "handshake"}

// wsCloseFor picks the WebSocket close code and reason that end a
// connection after err (nil: a clean end).
func wsCloseFor(err error) (int, string) {
	var he HelloError
	var pe ProtocolError
	switch {
	case err == nil:
		return websocket.CloseNormalClosure, ""
	case errors.Is(err, context.Canceled):
		return websocket.CloseGoingAway, "shutting down"
	case errors.Is(err, ErrTooLarge):
		return websocket.CloseMessageTooBig, closeReason(err)
	case errors.Is(err, errUnsupportedData):
		return websocket.CloseUnsupportedData, closeReason(err)
	case errors.As(err, &he), errors.Is(err, ErrIdle):
		return websocket.ClosePolicyViolation, closeReason(err)
	case errors.As(err, &pe):
		return websocket.CloseProtocolError, closeReason(err)
	}
	switch ErrorReason(err) {
	case "peer_closed", "reset":
		return websocket.CloseNormalClosure, "" // the peer is gone
	}
	return websocket.CloseInternalServerErr, closeReason(err)
}

// closeReason fits an error into a close frame (at most 123 bytes, valid
// UTF-8 even when the error quotes what a peer sent).
func closeReason(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// closeWS sends the close frame that fits err (bounded by a short deadline,
// since the peer may not read) and closes the socket.
func closeWS(ws *websocket.Conn, err error) {
	code, reason := wsCloseFor(err)
	msg := websocket.FormatCloseMessage(code, reason)
	_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	ws.Close()
}

// closeWithError closes c the way err calls for: a WebSocket close frame
// with the code that fits (1009 too large, 1003 unsupported data, 1002
// protocol error, 1008 refused or idle, 1001 shutdown), or a plain close.
func closeWithError(c Conn, err error) error {
	if wc, ok := c.(*wsConn); ok {
		wc.once.Do(func() {
			code, reason := wsCloseFor(err)
			msg := websocket.FormatCloseMessage(code, reason)
			_ = wc.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			wc.cerr = wc.ws.Close()
		})
		return wc.cerr
	}
	return c.Close()
}

// writeDeadliner is implemented by both transports: a deadline for the
// control writes that follow.
type writeDeadliner interface {
	setWriteDeadline(t time.Time) error
}

// ConnLimit bounds the connections one listener serves at once. The zero
// value and a limit of 0 admit everyone (and still count).
type ConnLimit struct {
	max  int64
	open atomic.Int64
}

// NewConnLimit returns a limit of max connections at once (0: none).
func NewConnLimit(max int) *ConnLimit { return &ConnLimit{max: int64(max)} }

// Acquire takes a place, or reports false when the listener is full: the
// caller then refuses the connection at once.
func (l *ConnLimit) Acquire() bool {
	n := l.open.Add(1)
	if l.max > 0 && n > l.max {
		l.open.Add(-1)
		return false
	}
	return true
}

// Release gives a place back.
func (l *ConnLimit) Release() { l.open.Add(-1) }

// Open is the number of places taken now.
func (l *ConnLimit) Open() int { return int(l.open.Load()) }

// Max is the limit (0: none).
func (l *ConnLimit) Max() int { return int(l.max) }

// OriginPolicy decides which browser pages may open a WebSocket: requests
// without an Origin header (bp-client, bp-relay, curl: not a browser) and
// same-origin pages always may; other origins only when listed, or when the
// list is "*".
type OriginPolicy struct {
	any     bool
	allowed map[string]bool // "scheme://host:port", lower case
}

// ParseOriginPolicy reads a comma-separated list of origins
// (https://example.com, http://localhost:3000) or "*"; empty is same origin
// only.
func ParseOriginPolicy(list string) (*OriginPolicy, error) {
	p := &OriginPolicy{allowed: map[string]bool{}}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
			continue
		case item == "*":
			p.any = true
			continue
		}
		u, err := url.Parse(item)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("origin %q: want scheme://host[:port], e.g. https://example.com, or *", item)
		}
		p.allowed[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	return p, nil
}

// Allowed reports whether r may open a WebSocket.
func (p *OriginPolicy) Allowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || p.any {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false // includes "null": a sandboxed or file:// page
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return p.allowed[strings.ToLower(u.Scheme+"://"+u.Host)]
}

// String describes the policy for logs.
func (p *OriginPolicy) String() string {
	if p.any {
		return "*"
	}
	if len(p.allowed) == 0 {
		return "same origin"
	}
	list := make([]string, 0, len(p.allowed))
	for o := range p.allowed {
		list = append(list, o)
	}
	slices.Sort(list)
	return "same origin, " + strings.Join(list, ", ")
}
