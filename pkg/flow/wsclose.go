package flow

import (
	"context"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// How a WebSocket connection ends: the close code and reason that fit the
// error that ended it, and the one function that sends the close frame.

// closeAborted is the WebSocket close code of Aborter.Abort: 1011
// (internal error). When a relay aborts because its upstream failed, the
// registry's 1014 "Bad Gateway" would be more precise, but gorilla/websocket
// peers (bp-client, other relays) reject it as an invalid code and would
// hide the reason.
const closeAborted = websocket.CloseInternalServerErr

// maxCloseReason is the longest close reason sent, in bytes: a close
// frame's body is at most 125 bytes, two of them the code (RFC 6455 5.5).
const maxCloseReason = 120

// closeFrameTimeout bounds the write of a close frame: the peer may not be
// reading, and a close must not wait for it.
const closeFrameTimeout = time.Second

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
		return websocket.CloseMessageTooBig, err.Error()
	case errors.Is(err, errUnsupportedData):
		return websocket.CloseUnsupportedData, err.Error()
	case errors.As(err, &he), errors.Is(err, ErrIdle):
		return websocket.ClosePolicyViolation, err.Error()
	case errors.As(err, &pe):
		return websocket.CloseProtocolError, err.Error()
	}
	switch ErrorReason(err) {
	case "peer_closed", "reset":
		return websocket.CloseNormalClosure, "" // the peer is gone
	}
	return websocket.CloseInternalServerErr, err.Error()
}

// closeReason fits s into a close frame: at most maxCloseReason bytes, cut
// at a character boundary, and valid UTF-8 even when s quotes what a peer
// sent (it ends before the first invalid byte).
func closeReason(s string) string {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				s = s[:i]
				break
			}
		}
	}
	if len(s) <= maxCloseReason {
		return s
	}
	n := maxCloseReason
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// sendClose writes a close frame of code and reason (fitted by
// closeReason), bounded by closeFrameTimeout. It leaves the socket open:
// every close of a WebSocket connection, full or half, goes through here.
func sendClose(ws *websocket.Conn, code int, reason string) error {
	msg := websocket.FormatCloseMessage(code, closeReason(reason))
	return ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeFrameTimeout))
}

// closeWS sends the close frame that fits err and closes the socket.
func closeWS(ws *websocket.Conn, err error) error {
	code, reason := wsCloseFor(err)
	_ = sendClose(ws, code, reason)
	return ws.Close()
}

// errorCloser is a Conn that closes the way an error calls for (WebSocket:
// the close code that fits).
type errorCloser interface {
	closeWithError(err error) error
}

// closeWithError closes c the way err calls for: a WebSocket close frame
// with the code that fits (1009 too large, 1003 unsupported data, 1002
// protocol error, 1008 refused or idle, 1001 shutdown), or a plain close.
func closeWithError(c Conn, err error) error {
	if ec, ok := c.(errorCloser); ok {
		return ec.closeWithError(err)
	}
	return c.Close()
}
