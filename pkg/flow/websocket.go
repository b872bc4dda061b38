package flow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// wsConn is a WebSocket connection: binary messages carry payload, text
// messages carry the hello and control messages (JSON).
type wsConn struct {
	ws      *websocket.Conn
	cur     io.Reader // the binary (or legacy text) message being read
	curSize int64     // bytes read of it so far
	maxMsg  int64     // the largest message the peer may send (0: no limit)
	one     [1]byte   // reads past maxMsg
	control bool      // the peer speaks acks and fins
	legacy  bool      // 2018 peer: text messages are payload too
	ctlBuf  []byte
	// readErr is the last error a read of gorilla's returned: after one,
	// gorilla's reader keeps failing, so a lingering close reads the raw
	// socket. Only the reader touches it, and endClose after the reader.
	readErr error
	wmu     sync.Mutex
	ctlOut  []byte
	// deadline is the write deadline asked for (unix nanoseconds, 0: none).
	// setWriteDeadline cannot take wmu: a blocked write holds it. So it sets
	// the socket's deadline at once and leaves this for every later write to
	// give gorilla, whose own deadline field is read under wmu.
	deadline atomic.Int64
	stopped  atomic.Bool // closing: no more payload or control writes
	// beginOnce: the close frame is sent once; closeSent: it went out, so
	// the close lingers.
	beginOnce sync.Once
	closeSent bool
	once      sync.Once
	cerr      error
}

// errWriteAfterClose is a write after the close frame went out: nothing may
// follow it (RFC 6455 5.5.1).
var errWriteAfterClose = fmt.Errorf("websocket: write after close: %w", net.ErrClosed)

var (
	_ Conn        = (*wsConn)(nil)
	_ HalfCloser  = (*wsConn)(nil)
	_ Aborter     = (*wsConn)(nil)
	_ errorCloser = (*wsConn)(nil)
)

// newWSConn wraps ws; maxMsg is the largest message the peer may send (0:
// no limit).
func newWSConn(ws *websocket.Conn, control, legacy bool, maxMsg int64) *wsConn {
	return &wsConn{ws: ws, control: control, legacy: legacy, maxMsg: maxMsg, ctlBuf: make([]byte, MaxControlSize), ctlOut: make([]byte, 0, 64)}
}

func (c *wsConn) Protocol() Protocol  { return WebSocket }
func (c *wsConn) NetConn() net.Conn   { return c.ws.NetConn() }
func (c *wsConn) SpeaksControl() bool { return c.control }

func (c *wsConn) Read(p []byte) (int, Control, error) {
	for {
		if c.cur == nil {
			mt, r, err := c.ws.NextReader()
			if err != nil {
				c.readErr = err
				return 0, Control{}, wsReadError(err)
			}
			if mt == websocket.TextMessage && !c.legacy {
				ctl, err := c.readControl(r)
				return 0, ctl, err
			}
			c.cur, c.curSize = r, 0
		}
		n, err := c.readCur(p)
		if err == io.EOF {
			c.cur = nil
			err = nil
			if n == 0 {
				continue
			}
		}
		return n, Control{}, wsReadError(err)
	}
}

// readControl reads a text message that must be one control message.
func (c *wsConn) readControl(r io.Reader) (Control, error) {
	n, err := io.ReadFull(r, c.ctlBuf)
	if err == nil {
		return Control{}, tooLargef("control message longer than %d bytes", MaxControlSize)
	}
	if err != io.ErrUnexpectedEOF && err != io.EOF {
		c.readErr = err
		return Control{}, wsReadError(err)
	}
	ctl, err := ParseControl(c.ctlBuf[:n])
	if err != nil {
		// Text that is no control message: close code 1003.
		err = ProtocolError{fmt.Errorf("%w: text message is no control message: %w", errUnsupportedData, err)}
	}
	return ctl, err
}

// readCur reads from the current message and refuses one longer than
// maxMsg with ErrTooLarge (close code 1009). The limit is enforced here
// rather than by gorilla's read limit, whose refusal sends a close frame of
// its own, without a reason, ahead of ours.
func (c *wsConn) readCur(p []byte) (int, error) {
	if c.maxMsg > 0 {
		room := c.maxMsg - c.curSize
		if room <= 0 {
			// At the limit: one more byte makes the message too large.
			n, err := c.cur.Read(c.one[:])
			if n > 0 {
				return 0, tooLargef("websocket message longer than %d bytes", c.maxMsg)
			}
			if err != nil && err != io.EOF {
				c.readErr = err
			}
			return 0, err
		}
		if int64(len(p)) > room {
			p = p[:room]
		}
	}
	n, err := c.cur.Read(p)
	c.curSize += int64(n)
	if err != nil && err != io.EOF {
		c.readErr = err
		if websocket.IsCloseError(err, websocket.CloseAbnormalClosure) {
			// Closed inside a message, as TCP inside a frame.
			err = fmt.Errorf("read message: %w", io.ErrUnexpectedEOF)
		}
	}
	return n, err
}

// wsReadError turns the ends of a peer's stream into what TCP says for
// them, so both transports end, and count, the same way: a normal close,
// and the socket closed at a message boundary without a close frame (what
// gorilla calls 1006), are io.EOF; a close with any other code is the peer
// closing the connection (ErrPeerClosed), not an error of this side's.
func wsReadError(err error) error {
	if err == nil {
		return nil
	}
	if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway,
		websocket.CloseNoStatusReceived, websocket.CloseAbnormalClosure) {
		return io.EOF
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w (close %d %q)", ErrPeerClosed, ce.Code, closeReason(ce.Text))
	}
	if errors.Is(err, websocket.ErrReadLimit) {
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	var ne net.Error
	if !errors.As(err, &ne) && !errors.Is(err, websocket.ErrCloseSent) && !errors.Is(err, io.ErrUnexpectedEOF) &&
		strings.HasPrefix(err.Error(), "websocket: ") && !websocket.IsUnexpectedCloseError(err) {
		// A malformed frame: gorilla has answered it with close code 1002.
		return ProtocolError{err}
	}
	return err
}

func (c *wsConn) WritePayload(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.stopped.Load() {
		return 0, errWriteAfterClose
	}
	c.applyDeadline()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// setWriteDeadline bounds the writes in progress and every later one: the
// socket's deadline now (a write blocked in the kernel returns at it), and
// gorilla's, which each write sets on the socket again, through applyDeadline.
func (c *wsConn) setWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.deadline.Store(ns)
	return c.ws.NetConn().SetWriteDeadline(t)
}

// applyDeadline gives gorilla the deadline asked for; wmu is held.
func (c *wsConn) applyDeadline() {
	var t time.Time
	if ns := c.deadline.Load(); ns != 0 {
		t = time.Unix(0, ns)
	}
	_ = c.ws.SetWriteDeadline(t)
}

func (c *wsConn) WriteControl(ctl Control) error {
	if !c.control {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.stopped.Load() {
		return errWriteAfterClose
	}
	c.ctlOut = AppendControl(c.ctlOut[:0], ctl)
	c.applyDeadline()
	return c.ws.WriteMessage(websocket.TextMessage, c.ctlOut)
}

// Close sends a normal close frame (bounded by a short deadline, since the
// peer may not be reading) and closes the socket.
func (c *wsConn) Close() error { return c.closeWithError(nil) }

// closeWithError implements errorCloser: once, the close frame that fits
// err, then the socket, without lingering: another goroutine may still be
// reading.
func (c *wsConn) closeWithError(err error) error {
	c.beginClose(err)
	c.once.Do(func() { c.cerr = c.ws.Close() })
	return c.cerr
}

// beginClose implements errorCloser: once, the close frame that fits err;
// then no more writes (a write blocked on the peer returns), and reads end
// within wsLingerTimeout.
func (c *wsConn) beginClose(err error) {
	c.beginOnce.Do(func() {
		c.stopped.Store(true)
		code, reason := wsCloseFor(err)
		c.closeSent = sendClose(c.ws, code, reason) == nil
		nc := c.ws.NetConn()
		_ = nc.SetWriteDeadline(time.Now())
		_ = nc.SetReadDeadline(time.Now().Add(wsLingerTimeout))
	})
}

// endClose implements errorCloser, once the reader has returned: unless
// the peer has stopped sending already, read and discard what it sends
// until its close frame, its end of stream or the linger deadline, so the
// close frame reaches it; then close the socket.
func (c *wsConn) endClose() error {
	c.once.Do(func() {
		if c.closeSent && (c.readErr == nil || !peerStopped(c.readErr)) {
			lingerRead(c.ws, c.readErr != nil)
		}
		c.cerr = c.ws.Close()
	})
	return c.cerr
}

// CloseWrite implements HalfCloser: a normal close frame, the socket left
// open for what the peer still sends.
func (c *wsConn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return sendClose(c.ws, websocket.CloseNormalClosure, "")
}

// Abort implements Aborter: once, a close frame with code 1011 and reason,
// then the socket.
func (c *wsConn) Abort(reason string) {
	c.beginOnce.Do(func() {
		c.stopped.Store(true)
		_ = sendClose(c.ws, closeAborted, reason)
	})
	c.once.Do(func() { c.cerr = c.ws.Close() })
}

// WebSocket buffer sizes. A 64 KiB read buffer lets the client read a
// large message with few system calls; the server's 64 KiB write buffer
// does the same for downloads, which it sends unmasked.
const (
	wsReadBufferSize  = 64 << 10
	wsWriteBufferSize = 64 << 10
)

// WebSocketFrameSize is the most payload one frame of the client's carries,
// its write buffer's size: a larger message goes out in several frames.
// The client copies and masks every byte it sends in that buffer (RFC 6455
// 5.3) just before the kernel copies it into the socket. One 128 KiB frame
// per message cost about 1.3 times the CPU per byte of 64 KiB frames on
// both VMs of docs/BENCHMARKS.md. 32 KiB frames were cheaper on the Xeon
// VM (0.70 to 0.87 times, 1.39 times the throughput: under load the
// WebSocket target is met there with 32 KiB, missed with 64, "Final run")
// and dearer on the EPYC VM (1.4 times); the Xeon's gain is
// the same-host cache effect 32 KiB TCP writes get there too, which a
// reader on another machine does not share, so 64 KiB it is ("The
// WebSocket frame again: the ninth round").
const WebSocketFrameSize = 64 << 10

// DialWebSocket connects to a ws:// or wss:// URL and sends the hello as the
// first text message.
func DialWebSocket(ctx context.Context, url string, hello Hello, opts SocketOptions, header http.Header) (Conn, error) {
	ws, err := dialWS(ctx, url, opts, header)
	if err != nil {
		return nil, err
	}
	b, err := EncodeHello(hello)
	if err != nil {
		ws.Close()
		return nil, err
	}
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		ws.Close()
		return nil, fmt.Errorf("send hello: %w", err)
	}
	return newWSConn(ws, true, false, 0), nil
}

// DialWebSocketRaw connects to a ws:// or wss:// URL without sending a
// hello: the first message is binary payload, so the peer treats the
// connection as hello-less.
func DialWebSocketRaw(ctx context.Context, url string, opts SocketOptions, header http.Header) (Conn, error) {
	ws, err := dialWS(ctx, url, opts, header)
	if err != nil {
		return nil, err
	}
	return newWSConn(ws, false, false, 0), nil
}

// dialWS opens the WebSocket connection to url with the socket options and
// the package's buffer sizes; the hello is the caller's.
//
// gorilla bounds the handshake by ctx's deadline only, not by its end, so
// an interrupted client waited the whole handshake timeout (10 s) on a
// target that never answered: ctx's end sets the socket's deadline to now
// until the handshake is over.
//
// A ctx with a deadline (bp-relay's --dial-timeout) bounds the handshake
// alone; only one without gets wsHandshakeTimeout. gorilla's timeout
// applied on top of every deadline, so a relay given --dial-timeout 30s
// still cut its upstream handshakes at 10 s ("read tcp ...: i/o timeout"
// under a burst of 1,000 beside a busy suite).
func dialWS(ctx context.Context, url string, opts SocketOptions, header http.Header) (*websocket.Conn, error) {
	nd := opts.dialer()
	var stopCancel func() bool
	d := websocket.Dialer{
		NetDialContext: func(dctx context.Context, network, addr string) (net.Conn, error) {
			c, err := nd.DialContext(dctx, network, addr)
			if err != nil {
				return nil, err
			}
			stopCancel = context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
			return newRawSocket(c), nil
		},
		ReadBufferSize:  wsReadBufferSize,
		WriteBufferSize: WebSocketFrameSize,
		WriteBufferPool: &wsClientWriteBuffers,
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: opts.TLS,
	}
	if _, ok := ctx.Deadline(); !ok {
		d.HandshakeTimeout = wsHandshakeTimeout
	}
	ws, resp, err := d.DialContext(ctx, url, header)
	if stopCancel != nil && !stopCancel() && err == nil {
		ws.Close() // its deadline was set to now
		err = ctx.Err()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dial %s: %w", url, ctx.Err())
		}
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %s)%s", url, err, resp.Status, plainToTLSHint(resp))
		}
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	return ws, nil
}

// wsHandshakeTimeout bounds a WebSocket handshake (TCP connect included)
// whose context has no deadline; a variable for the tests.
var wsHandshakeTimeout = 10 * time.Second

// plainToTLSHint explains a refused handshake that came from a TLS port: Go's
// TLS servers (bp-server, bp-relay with --tls-cert) answer plain HTTP with a
// 400 that says so in its body, which gorilla keeps (up to 1 KiB).
func plainToTLSHint(resp *http.Response) string {
	if resp.Body == nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if bytes.Contains(b, []byte("HTTP request to an HTTPS server")) {
		return ": the server speaks TLS on this port, use wss://"
	}
	return ""
}

// Upgrader turns HTTP requests into WebSocket connections and reads the
// optional hello.
type Upgrader struct {
	websocket.Upgrader
	// HelloTimeout bounds the wait for the first message.
	HelloTimeout time.Duration
	// MaxMessageSize is the largest message a peer may send (0: no
	// limit); a larger one is answered with close code 1009.
	MaxMessageSize int64
}

// NewUpgrader returns an upgrader with the package's buffer sizes. A
// server holds no WebSocket buffer of its own while idle: it reads through
// the HTTP server's 4 KiB reader (gorilla reads a large message straight
// into the caller's buffer), and writes through a 64 KiB buffer taken from
// a shared pool for each message only.
func NewUpgrader() *Upgrader {
	return &Upgrader{Upgrader: websocket.Upgrader{
		ReadBufferSize:  0, // reuse the hijacked HTTP reader
		WriteBufferSize: wsWriteBufferSize,
		WriteBufferPool: &wsWriteBuffers,
	}, HelloTimeout: 10 * time.Second, MaxMessageSize: DefaultMaxMessageSize}
}

// wsWriteBuffers are the servers' WebSocket write buffers between messages.
var wsWriteBuffers sync.Pool

// wsClientWriteBuffers are the clients' (WebSocketFrameSize each) between
// messages: a slow connection, one small message a second, holds one only
// while it writes, where each held its own for its life (64 KiB of heap a
// connection).
var wsClientWriteBuffers sync.Pool

// ErrHandshake marks errors of the HTTP upgrade itself; the upgrader has
// already answered the request.
var ErrHandshake = errors.New("websocket handshake failed")

// Accept upgrades the request and reads the hello. A first message that is
// binary makes the connection hello-less: it is payload, and no acks are
// sent. The hello is nil then.
func (u *Upgrader) Accept(w http.ResponseWriter, r *http.Request) (*Hello, Conn, error) {
	ws, err := u.Upgrade(w, r, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	// A shutdown (the request's context ends) stops the wait for the hello.
	stop := context.AfterFunc(r.Context(), func() { ws.NetConn().SetReadDeadline(time.Now()) })
	h, c, readBroken, err := u.readHello(ws)
	stop()
	if err != nil && r.Context().Err() != nil {
		err = fmt.Errorf("%w: %w", context.Canceled, err)
		closeWS(ws, err, readBroken)
		return nil, nil, err
	}
	if err != nil {
		// Refused before it opened: counted by reason hello, closed with
		// the code that fits (1008, or 1009 for a hello too large).
		err = HelloError{err}
		closeWS(ws, err, readBroken)
		return nil, nil, err
	}
	return h, c, nil
}

// readHello reads the first message: a hello, or binary payload of a
// hello-less peer. readBroken says a read of gorilla's failed (see
// wsConn.readErr).
func (u *Upgrader) readHello(ws *websocket.Conn) (h *Hello, c Conn, readBroken bool, err error) {
	if u.HelloTimeout > 0 {
		ws.SetReadDeadline(time.Now().Add(u.HelloTimeout))
	}
	mt, rd, err := ws.NextReader()
	if err != nil {
		return nil, nil, true, fmt.Errorf("read hello: %w", wsReadError(err))
	}
	ws.SetReadDeadline(time.Time{})
	if mt == websocket.BinaryMessage {
		wc := newWSConn(ws, false, false, u.MaxMessageSize)
		wc.cur = rd
		return nil, wc, false, nil
	}
	b, err := io.ReadAll(io.LimitReader(rd, MaxHelloSize+1))
	if err != nil {
		return nil, nil, true, fmt.Errorf("read hello: %w", wsReadError(err))
	}
	hello, err := ParseHello(b)
	if err != nil {
		return nil, nil, false, err
	}
	return &hello, newWSConn(ws, !hello.Legacy, hello.Legacy, u.MaxMessageSize), false, nil
}
