package flow

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// DialTCPRaw connects to addr without sending a hello: every byte is
// payload, and neither side speaks acks or fins. A relay uses it for
// hello-less downstream peers (nc, socat), so the path stays raw end to end.
func DialTCPRaw(ctx context.Context, addr string, opts SocketOptions) (Conn, error) {
	d := net.Dialer{Control: opts.control}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if opts.TLS != nil {
		if nc, err = clientTLS(ctx, nc, addr, opts.TLS); err != nil {
			return nil, err
		}
	}
	return newTCPConn(nc, nc, false), nil
}

// DialWebSocketRaw connects to a ws:// or wss:// URL without sending a
// hello: the first message is binary payload, so the peer treats the
// connection as hello-less.
func DialWebSocketRaw(ctx context.Context, url string, opts SocketOptions, header http.Header) (Conn, error) {
	ws, err := dialWS(ctx, url, opts, header)
	if err != nil {
		return nil, err
	}
	return newWSConn(ws, false, false), nil
}

// closeUpstreamFailed is the WebSocket close code a relay sends downstream
// when its upstream failed: 1011 (internal error). The registry's 1014 "Bad
// Gateway" would be more precise, but gorilla/websocket peers (bp-client,
// other relays) reject it as an invalid code and would hide the reason.
const closeUpstreamFailed = websocket.CloseInternalServerErr

// closeWrite ends the sending half of c and keeps reading: TCP shutdown(WR),
// or a WebSocket close frame without closing the socket. A raw relay passes
// an end of stream on this way, like socat does.
func closeWrite(c Conn) error {
	switch c := c.(type) {
	case *tcpConn:
		c.wmu.Lock()
		defer c.wmu.Unlock()
		if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
			return cw.CloseWrite()
		}
	case *wsConn:
		c.wmu.Lock()
		defer c.wmu.Unlock()
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		return c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	}
	return nil
}

// abortConn closes c so that its peer sees an error, not a clean end: a TCP
// reset, or a WebSocket close with code 1011 and the reason.
func abortConn(c Conn, reason string) {
	switch c := c.(type) {
	case *tcpConn:
		if tc := tcpSocket(c.conn); tc != nil {
			_ = tc.SetLinger(0)
		}
		c.Close()
	case *wsConn:
		c.once.Do(func() {
			msg := websocket.FormatCloseMessage(closeUpstreamFailed, truncate(reason, 120))
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			c.cerr = c.ws.Close()
		})
	default:
		c.Close()
	}
}
