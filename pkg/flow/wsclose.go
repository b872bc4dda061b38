package flow

import (
	"context"
	"errors"
	"io"
	"net"
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
	case errors.Is(err, ErrPayloadMemory):
		return websocket.CloseTryAgainLater, err.Error()
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

// wsLingerTimeout bounds a lingering close: how long, after sending its
// close frame, a side reads and discards what the peer still sends before
// it closes the socket.
//
// Closing a socket with unread data in it makes the kernel answer with a
// reset, and a peer that was still sending (a client past --ws-max-message,
// or at a shutdown) then sees its connection fail (1006) before it reads the
// close frame and its reason. So a closing side sends its close frame,
// stops writing, and reads on until the peer's own close frame or the end
// of its stream, at most this long (RFC 6455 7.1.1; the same "lingering
// close" web servers do for HTTP).
const wsLingerTimeout = 2 * time.Second

// closeWS sends the close frame that fits err, lingers (see
// wsLingerTimeout) and closes the socket; ws's reader is unused by anyone
// else. readBroken says a read of ws failed already, so what the peer still
// sends is read from the socket underneath.
func closeWS(ws *websocket.Conn, err error, readBroken bool) error {
	code, reason := wsCloseFor(err)
	if sendClose(ws, code, reason) == nil {
		_ = ws.NetConn().SetWriteDeadline(time.Now())
		_ = ws.NetConn().SetReadDeadline(time.Now().Add(wsLingerTimeout))
		lingerRead(ws, readBroken)
	}
	return ws.Close()
}

// lingerRead reads and discards what the peer sends until its close frame,
// the end of its stream or the read deadline (set by the caller). While
// gorilla's reader works it reads frames, so it stops at the peer's close
// frame; once a read failed (gorilla keeps its error) it reads the raw
// socket until the peer closes it.
func lingerRead(ws *websocket.Conn, readBroken bool) {
	if !readBroken {
		for {
			if _, _, err := ws.NextReader(); err != nil {
				return
			}
		}
	}
	_, _ = io.Copy(io.Discard, ws.NetConn())
}

// peerStopped reports whether a read error of gorilla's means the peer
// sends nothing more: its close frame, the end of its stream, a reset, or
// a read deadline that passed. Anything else (a frame or limit error)
// leaves its data unread.
func peerStopped(err error) bool {
	var ce *websocket.CloseError
	var ne net.Error
	return errors.As(err, &ce) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		IsReset(err) || (errors.As(err, &ne) && ne.Timeout())
}

// errorCloser is a Conn that closes the way an error calls for (WebSocket:
// the close code that fits), in two steps, so it can linger: beginClose
// sends what the end calls for and stops writing, and may run while the
// connection's reader and writer are still busy (it makes them return);
// endClose, once they have returned, lingers and closes the socket.
type errorCloser interface {
	closeWithError(err error) error
	beginClose(err error)
	endClose() error
}

// CloseWithError closes c the way err calls for: a WebSocket close frame
// with the code that fits (1009 too large, 1003 unsupported data, 1002
// protocol error, 1008 refused or idle, 1013 no payload memory, 1001
// shutdown), or a plain close. A relay refusing a connection before it
// dialled upstream closes it so, with the reason that is the peer's.
func CloseWithError(c Conn, err error) error {
	if ec, ok := c.(errorCloser); ok {
		return ec.closeWithError(err)
	}
	return c.Close()
}

// beginClose starts closing c as err calls for while its reader and writer
// may still run (see errorCloser); a transport that cannot linger closes at
// once. endClose finishes it once they have returned.
func beginClose(c Conn, err error) {
	if ec, ok := c.(errorCloser); ok {
		ec.beginClose(err)
		return
	}
	c.Close()
}

// endClose: see beginClose.
func endClose(c Conn) error {
	if ec, ok := c.(errorCloser); ok {
		return ec.endClose()
	}
	return c.Close()
}
