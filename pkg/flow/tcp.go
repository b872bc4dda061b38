package flow

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// tcpConn is a TCP connection after a hello: framed in both directions, so
// payload and control messages can share each direction ("both" runs).
type tcpConn struct {
	conn    net.Conn
	r       io.Reader // conn, behind any bytes read past the hello
	framed  bool      // false: hello-less, every byte is payload
	remain  int       // payload bytes left in the current data frame
	hdr     [frameHeader]byte
	ctlBuf  []byte
	wmu     sync.Mutex
	whdr    [frameHeader]byte
	bufs    net.Buffers
	bufsArr [2][]byte
	ctlOut  []byte
	once    sync.Once
	cerr    error
}

var (
	_ Conn       = (*tcpConn)(nil)
	_ HalfCloser = (*tcpConn)(nil)
	_ Aborter    = (*tcpConn)(nil)
	_ RawStream  = (*tcpConn)(nil)
)

func newTCPConn(c net.Conn, r io.Reader, framed bool) *tcpConn {
	return &tcpConn{conn: c, r: r, framed: framed, ctlBuf: make([]byte, MaxControlSize), ctlOut: make([]byte, 0, 64)}
}

func (c *tcpConn) Protocol() Protocol  { return TCP }
func (c *tcpConn) NetConn() net.Conn   { return c.conn }
func (c *tcpConn) SpeaksControl() bool { return c.framed }

func (c *tcpConn) Read(p []byte) (int, Control, error) {
	if !c.framed {
		n, err := c.r.Read(p)
		return n, Control{}, err
	}
	for c.remain == 0 {
		if _, err := io.ReadFull(c.r, c.hdr[:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("read frame header: %w", err)
			}
			return 0, Control{}, err
		}
		if isRefusal(&c.hdr) {
			return 0, Control{}, readRefusal(c.r)
		}
		h, err := parseFrameHeader(&c.hdr)
		if err != nil {
			return 0, Control{}, err
		}
		if h.control {
			ctl, err := c.readControl(h.size)
			return 0, ctl, err
		}
		c.remain = h.size
	}
	if len(p) > c.remain {
		p = p[:c.remain]
	}
	n, err := c.r.Read(p)
	c.remain -= n
	if err == io.EOF && c.remain > 0 {
		err = fmt.Errorf("read data frame: %w", io.ErrUnexpectedEOF)
	}
	return n, Control{}, err
}

// readControl reads a control frame's body of size bytes and parses it.
func (c *tcpConn) readControl(size int) (Control, error) {
	if _, err := io.ReadFull(c.r, c.ctlBuf[:size]); err != nil {
		if err == io.EOF && size > 0 {
			// A header without its body is a truncated frame, not a
			// clean end of the stream.
			err = io.ErrUnexpectedEOF
		}
		return Control{}, fmt.Errorf("read control frame: %w", err)
	}
	return ParseControl(c.ctlBuf[:size])
}

func (c *tcpConn) WritePayload(p []byte) (int, error) {
	if !c.framed {
		return c.conn.Write(p)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.whdr[0] = frameData
	binary.BigEndian.PutUint32(c.whdr[1:], uint32(len(p)))
	// One writev for header and payload: no copy of the payload.
	c.bufsArr[0], c.bufsArr[1] = c.whdr[:], p
	c.bufs = c.bufsArr[:]
	n, err := c.bufs.WriteTo(c.conn)
	return max(int(n)-frameHeader, 0), err
}

func (c *tcpConn) WriteControl(ctl Control) error {
	if !c.framed {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := append(c.ctlOut[:0], frameControl, 0, 0, 0, 0)
	b = AppendControl(b, ctl)
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-frameHeader))
	c.ctlOut = b
	_, err := c.conn.Write(b)
	return err
}

func (c *tcpConn) setWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

func (c *tcpConn) Close() error {
	c.once.Do(func() { c.cerr = c.conn.Close() })
	return c.cerr
}

// CloseWrite implements HalfCloser: shutdown(SHUT_WR), after any write in
// progress.
func (c *tcpConn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Abort implements Aborter: the close resets the connection (SO_LINGER 0).
// TCP has no room for the reason.
func (c *tcpConn) Abort(string) {
	if tc := tcpSocket(c.conn); tc != nil {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// RawStream: framed TCP is forwarded as it is.
func (c *tcpConn) Framed() bool          { return c.framed }
func (c *tcpConn) AtFrameBoundary() bool { return c.remain == 0 }
func (c *tcpConn) RawReader() io.Reader  { return c.r }

// WriteRaw implements RawStream.
func (c *tcpConn) WriteRaw(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.conn.Write(b)
}

// DialTCP connects to addr, sets the socket buffers (0 keeps the kernel's
// default) and sends the hello. Buffers are set before connect, so the
// window scale the kernel negotiates fits them.
func DialTCP(ctx context.Context, addr string, hello Hello, opts SocketOptions) (Conn, error) {
	nc, err := dialTCPSocket(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	b, err := EncodeHello(hello)
	if err != nil {
		nc.Close()
		return nil, err
	}
	line := make([]byte, 0, len(TCPHelloPrefix)+len(b)+1)
	line = append(append(append(line, TCPHelloPrefix...), b...), '\n')
	if _, err := nc.Write(line); err != nil {
		nc.Close()
		return nil, fmt.Errorf("send hello: %w", err)
	}
	return newTCPConn(nc, nc, true), nil
}

// DialTCPRaw connects to addr without sending a hello: every byte is
// payload, and neither side speaks acks or fins. A relay uses it for
// hello-less downstream peers (nc, socat), so the path stays raw end to end.
func DialTCPRaw(ctx context.Context, addr string, opts SocketOptions) (Conn, error) {
	nc, err := dialTCPSocket(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	return newTCPConn(nc, nc, false), nil
}

// dialTCPSocket connects to addr with the socket options, inside TLS when
// they ask for it.
func dialTCPSocket(ctx context.Context, addr string, opts SocketOptions) (net.Conn, error) {
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
	return nc, nil
}

// AcceptTCP reads the optional hello from a freshly accepted connection. It
// returns the hello (nil for a hello-less peer, whose bytes are all payload)
// and the connection. The deadline bounds how long a peer may take to send
// its first bytes; a hello-less peer that is silent that long is still
// served as hello-less.
//
// A connection from a TLS listener completes its handshake first, within
// the same timeout.
func AcceptTCP(nc net.Conn, helloTimeout time.Duration) (*Hello, Conn, error) {
	h, c, err := acceptTCP(nc, helloTimeout)
	if err != nil {
		// Refused before it opened: counted by reason hello.
		return nil, nil, HelloError{err}
	}
	return h, c, nil
}

func acceptTCP(nc net.Conn, helloTimeout time.Duration) (*Hello, Conn, error) {
	if err := serverTLS(nc, helloTimeout); err != nil {
		return nil, nil, err
	}
	buf := make([]byte, MaxHelloSize)
	n := 0
	if helloTimeout > 0 {
		nc.SetReadDeadline(time.Now().Add(helloTimeout))
	}
	// Read until the prefix is decided, then until the newline (bounded).
	for {
		m, err := nc.Read(buf[n:])
		n += m
		got := buf[:n]
		if !bytes.HasPrefix(got, []byte(TCPHelloPrefix)[:min(n, len(TCPHelloPrefix))]) || (err != nil && n > 0 && n < len(TCPHelloPrefix)) {
			// Not a hello: these bytes are the first payload.
			nc.SetReadDeadline(time.Time{})
			return nil, newTCPConn(nc, io.MultiReader(bytes.NewReader(got), nc), false), nil
		}
		if i := bytes.IndexByte(got, '\n'); i >= 0 {
			nc.SetReadDeadline(time.Time{})
			h, herr := ParseHello(got[len(TCPHelloPrefix):i])
			if herr != nil {
				return nil, nil, herr
			}
			var r io.Reader = nc
			if rest := got[i+1:]; len(rest) > 0 {
				r = io.MultiReader(bytes.NewReader(bytes.Clone(rest)), nc)
			}
			return &h, newTCPConn(nc, r, true), nil
		}
		if n == len(buf) {
			return nil, nil, tooLargef("hello line longer than %d bytes", MaxHelloSize)
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && n == 0 {
				nc.SetReadDeadline(time.Time{})
				return nil, newTCPConn(nc, nc, false), nil
			}
			if err == io.EOF && n == 0 {
				return nil, newTCPConn(nc, nc, false), nil
			}
			return nil, nil, fmt.Errorf("read hello: %w", err)
		}
	}
}

// SocketOptions are set on a socket before it connects or listens.
type SocketOptions struct {
	SendBuffer    int // SO_SNDBUF in bytes; 0 keeps the kernel default
	ReceiveBuffer int // SO_RCVBUF in bytes; 0 keeps the kernel default
	// TLS, when set, is the client side's TLS: DialTCP and DialTCPRaw run
	// the protocol inside TLS (tls:// targets), and wss:// URLs use it
	// instead of the defaults. Listeners ignore it.
	TLS *tls.Config
}

func (o SocketOptions) control(network, address string, rc syscall.RawConn) error {
	if o.SendBuffer <= 0 && o.ReceiveBuffer <= 0 {
		return nil
	}
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = setBuffers(fd, o.SendBuffer, o.ReceiveBuffer)
	})
	if err != nil {
		return err
	}
	return serr
}

// ListenTCP listens on addr with the socket options applied to the
// listening socket, so every accepted connection inherits them (a receive
// buffer must be set before the handshake to shape the window scale).
func ListenTCP(ctx context.Context, addr string, opts SocketOptions) (net.Listener, error) {
	lc := net.ListenConfig{Control: opts.control}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}
