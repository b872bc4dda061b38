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
	conn   net.Conn
	r      io.Reader // conn, behind any bytes read past the hello
	framed bool      // false: hello-less, every byte is payload
	remain int       // payload bytes left in the current data frame
	hdr    [frameHeader]byte
	hdrN   int           // bytes of the next header read with the last payload
	vec    *vecReader    // readv of the socket (nil: not a plain TCP socket)
	wvec   *vecWriter    // writev of the socket (nil: not a plain TCP socket)
	pre    *bytes.Reader // bytes read past the hello, read through r first (nil: none)
	ctlBuf []byte        // a control frame's body over ctlSmall's size (allocated on first use)
	// ctlSmall holds a control frame's body: acks and fins are tens of
	// bytes, so the MaxControlSize buffer each connection held before
	// (4 KiB of heap per connection, with 19,000 of them open) is taken
	// only by a connection that receives a larger one.
	ctlSmall [256]byte
	// ahead is stream bytes read but not yet taken: what a read after a
	// wait brought past the frame it was for (readHeader), in ctlSmall or,
	// rarely, a copy. Every read takes them first.
	ahead []byte
	// lastData is the last data frame's size: how much of a slow peer's
	// next frame a read after a wait takes with its header.
	lastData int
	wmu      sync.Mutex
	whdr     [frameHeader]byte
	bufs     net.Buffers
	bufsArr  [2][]byte
	ctlOut   []byte
	once     sync.Once
	cerr     error
	// flush, when conn buffers its writes (an HTTP/2 stream's body, whose
	// Write may hold a frame header back to send it with the payload), ends
	// every message: the frames go out whole, one per message.
	flush func() error
}

var (
	_ Conn       = (*tcpConn)(nil)
	_ HalfCloser = (*tcpConn)(nil)
	_ Aborter    = (*tcpConn)(nil)
	_ RawStream  = (*tcpConn)(nil)
)

func newTCPConn(c net.Conn, r io.Reader, framed bool) *tcpConn {
	tc := &tcpConn{conn: c, r: r, framed: framed, ctlOut: make([]byte, 0, 64)}
	if framed && r == c {
		tc.vec = newVecReader(c)
	}
	if framed {
		tc.wvec = newVecWriter(c)
	}
	if f, ok := c.(interface{ Flush() error }); ok {
		tc.flush = f.Flush
	}
	return tc
}

// newTCPConnAfter is a framed connection whose first bytes, rest, came in
// with the hello: they are read first, then the socket.
func newTCPConnAfter(c net.Conn, rest []byte) *tcpConn {
	pre := bytes.NewReader(bytes.Clone(rest))
	tc := newTCPConn(c, io.MultiReader(pre, c), true)
	tc.pre, tc.vec = pre, newVecReader(c)
	return tc
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
		h, n, err := c.readHeader(p)
		if err != nil {
			return 0, Control{}, err
		}
		if h.control {
			ctl, err := c.readControl(h.size)
			return 0, ctl, err
		}
		c.lastData, c.remain = h.size, h.size-n
		if n > 0 {
			return n, Control{}, nil // the payload came with its header
		}
	}
	n, err := c.readPayload(p)
	if err == io.EOF && c.remain > 0 {
		err = fmt.Errorf("read data frame: %w", io.ErrUnexpectedEOF)
	}
	return n, Control{}, err
}

// readHeader completes the next frame header (some of it may have come
// with the last payload, or wait in ahead) and decodes it.
//
// When the socket is empty, the read after the wait also takes what
// follows the header (readAfterWait), into p up to the last data frame's
// size or into ctlSmall (see spec): n is the bytes of a data frame's
// payload it put in p, and anything else it took waits in ahead. A slow
// connection's frame then costs one read, not two: bp-server's reads of
// 19,000 connections writing 1 KiB a second each, and bp-client's of their
// acks, fell from three system calls a frame to two (docs/BENCHMARKS.md).
func (c *tcpConn) readHeader(p []byte) (h frameHead, n int, err error) {
	for c.hdrN < frameHeader {
		var m int
		if c.vec == nil || len(c.ahead) > 0 || (c.pre != nil && c.pre.Len() > 0) {
			m, err = (*tcpFrameReader)(c).Read(c.hdr[c.hdrN:])
		} else {
			spec, inP := c.spec(p)
			m, err = c.vec.readAfterWait(c.hdr[c.hdrN:], spec)
			if past := m - (frameHeader - c.hdrN); past > 0 {
				return c.tookPast(spec[:past], inP)
			}
		}
		c.hdrN += m
		if err == io.EOF && c.hdrN > 0 {
			err = io.ErrUnexpectedEOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("read frame header: %w", err)
		}
		if err != nil {
			return frameHead{}, 0, err
		}
	}
	c.hdrN = 0
	h, err = c.decodeHeader()
	return h, 0, err
}

// spec is where a read after a wait puts what follows the header: p, up to
// the last data frame's size (a writer's frames are mostly of one size, so
// the read ends where the frame does), or ctlSmall, which holds an ack or
// a fin whole, before any data frame larger than it.
func (c *tcpConn) spec(p []byte) (spec []byte, inP bool) {
	if c.lastData > len(c.ctlSmall) && len(p) > len(c.ctlSmall) {
		return p[:min(len(p), c.lastData)], true
	}
	return c.ctlSmall[:], false
}

// tookPast decodes the header a read after a wait completed, with past,
// the bytes that came after it (in p when inP, else in ctlSmall): a data
// frame's payload in p is returned as read (n); the rest, a control
// frame's body or the next frames, waits in ahead.
func (c *tcpConn) tookPast(past []byte, inP bool) (frameHead, int, error) {
	c.hdrN = 0
	if isRefusal(&c.hdr) {
		c.keepAhead(past, inP)
		return frameHead{}, 0, readRefusal((*tcpFrameReader)(c))
	}
	h, err := parseFrameHeader(&c.hdr)
	if err != nil {
		return frameHead{}, 0, err
	}
	n := 0
	if !h.control && inP {
		n = min(len(past), h.size)
	}
	c.keepAhead(past[n:], inP)
	return h, n, nil
}

// keepAhead makes b the bytes ahead (there are none before): where they
// are when they are in ctlSmall, else copied there, or, over its size, to a
// buffer of their own, which goes when they have been read. That is rare:
// a frame shorter than the last data frame, with more behind it in one
// read after a wait.
func (c *tcpConn) keepAhead(b []byte, inP bool) {
	switch {
	case len(b) == 0:
		c.ahead = nil
	case !inP:
		c.ahead = b
	case len(b) <= len(c.ctlSmall):
		c.ahead = c.ctlSmall[:copy(c.ctlSmall[:], b)]
	default:
		c.ahead = bytes.Clone(b)
	}
}

// decodeHeader decodes c.hdr, or reads the refusal it starts.
func (c *tcpConn) decodeHeader() (frameHead, error) {
	if isRefusal(&c.hdr) {
		return frameHead{}, readRefusal((*tcpFrameReader)(c))
	}
	return parseFrameHeader(&c.hdr)
}

// readPayload reads payload into p, of the current data frame and, when
// that frame ends inside p, of the next (see readAcross), and takes what it
// read off c.remain. When p reaches the frame's end, the same readv also
// takes the next frame's header into c.hdr, so a stream of frames no
// larger than the read size costs one system call per frame instead of
// two (see vecReader).
func (c *tcpConn) readPayload(p []byte) (int, error) {
	if len(c.ahead) > 0 || c.vec == nil || len(p) == 0 || (c.pre != nil && c.pre.Len() > 0) {
		n, err := (*tcpFrameReader)(c).Read(p[:min(len(p), c.remain)])
		c.remain -= n
		return n, err
	}
	if len(p) > c.remain {
		return c.readAcross(p)
	}
	var next []byte
	if len(p) == c.remain {
		next = c.hdr[:]
	}
	n, err := c.vec.read(p, next)
	if n > len(p) {
		c.hdrN, n = n-len(p), len(p)
	}
	c.remain -= n
	return n, err
}

// readAcross reads a data frame's last c.remain bytes into p, the next
// header into c.hdr and, in the same readv, the next frame's payload into
// the rest of p, up to the last data frame's size and the header after
// it: the payload of two frames, without the header between them, in one
// call, and the header that follows them (copied out of p). A reader that
// stopped at every frame's end made a system call for each frame's tail
// while more was waiting: at full speed a third of bp-server's reads were
// under 8 KiB, and its 24,000 readv a GB fell to 22,000 (iperf3's server:
// 18,000 to 20,000 reads; docs/BENCHMARKS.md, the eighth round).
//
// A next header that is not a data frame's (a control frame, a refusal, a
// bad header) is decoded by the next Read: this one returns the payload
// before it, and what came after the header waits in ahead. So do the
// bytes past a next frame shorter than the last.
func (c *tcpConn) readAcross(p []byte) (int, error) {
	tail := c.remain
	next := p[tail:]
	next = next[:min(len(next), c.lastData+frameHeader)]
	n, err := c.vec.readAcross(p[:tail], c.hdr[:], next)
	if n <= tail {
		c.remain -= n
		return n, err
	}
	c.remain = 0
	if n < tail+frameHeader {
		c.hdrN = n - tail
		return tail, err
	}
	past := next[:n-tail-frameHeader]
	h, herr := parseFrameHeader(&c.hdr)
	if herr != nil || h.control {
		// The next Read decodes it again (decodeHeader), a refusal too:
		// its "BP/1 " is no frame's type.
		c.hdrN = frameHeader
		c.keepAhead(past, true)
		return tail, err
	}
	k := min(len(past), h.size)
	c.lastData, c.remain = h.size, h.size-k
	if rest := past[k:]; len(rest) <= frameHeader {
		c.hdrN = copy(c.hdr[:], rest) // the next header, or its start
	} else {
		c.keepAhead(rest, true)
	}
	return tail + k, err
}

// tcpFrameReader reads a framed connection's headers and control frames,
// and is its RawReader: the bytes ahead first, then with the connection's
// readv once the bytes that came with the hello are read (no runtime
// system call around it: see rawCall), else from c.r.
type tcpFrameReader tcpConn

func (r *tcpFrameReader) Read(p []byte) (int, error) {
	c := (*tcpConn)(r)
	if len(c.ahead) > 0 {
		n := copy(p, c.ahead) // within ctlSmall, into its start: copy moves them down
		if c.ahead = c.ahead[n:]; len(c.ahead) == 0 {
			c.ahead = nil
		}
		return n, nil
	}
	if c.vec == nil || len(p) == 0 || (c.pre != nil && c.pre.Len() > 0) {
		return c.r.Read(p)
	}
	return c.vec.read(p, nil)
}

// readControl reads a control frame's body of size bytes and parses it.
func (c *tcpConn) readControl(size int) (Control, error) {
	buf := c.ctlSmall[:]
	if size > len(buf) {
		if c.ctlBuf == nil {
			c.ctlBuf = make([]byte, MaxControlSize)
		}
		buf = c.ctlBuf
	}
	if _, err := io.ReadFull((*tcpFrameReader)(c), buf[:size]); err != nil {
		if err == io.EOF && size > 0 {
			// A header without its body is a truncated frame, not a
			// clean end of the stream.
			err = io.ErrUnexpectedEOF
		}
		return Control{}, fmt.Errorf("read control frame: %w", err)
	}
	return ParseControl(buf[:size])
}

func (c *tcpConn) WritePayload(p []byte) (int, error) {
	if !c.framed {
		n, err := c.conn.Write(p)
		return n, c.flushed(err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.whdr[0] = frameData
	binary.BigEndian.PutUint32(c.whdr[1:], uint32(len(p)))
	// One writev for header and payload: no copy of the payload.
	if c.wvec != nil {
		n, err := c.wvec.write(c.whdr[:], p)
		return max(n-frameHeader, 0), err
	}
	c.bufsArr[0], c.bufsArr[1] = c.whdr[:], p
	c.bufs = c.bufsArr[:]
	n, err := c.bufs.WriteTo(c.conn)
	return max(int(n)-frameHeader, 0), c.flushed(err)
}

// flushed ends a message on a buffering conn (flush) after a write that
// succeeded, and returns the write's error or the flush's.
func (c *tcpConn) flushed(err error) error {
	if err != nil || c.flush == nil {
		return err
	}
	return c.flush()
}

func (c *tcpConn) WriteControl(ctl Control) error {
	if !c.framed {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := appendControlFrame(c.ctlOut[:0], ctl)
	c.ctlOut = b
	if c.wvec != nil {
		_, err := c.wvec.write(b, nil)
		return err
	}
	_, err := c.conn.Write(b)
	return c.flushed(err)
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
func (c *tcpConn) AtFrameBoundary() bool { return c.remain == 0 && c.hdrN == 0 }
func (c *tcpConn) RawReader() io.Reader  { return (*tcpFrameReader)(c) }

// WriteRaw implements RawStream.
func (c *tcpConn) WriteRaw(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wvec != nil {
		return c.wvec.write(b, nil)
	}
	n, err := c.conn.Write(b)
	return n, c.flushed(err)
}

// DialTCP connects to addr, sets the socket buffers (0 keeps the kernel's
// default) and sends the hello. Buffers are set before connect, so the
// window scale the kernel negotiates fits them.
func DialTCP(ctx context.Context, addr string, hello Hello, opts SocketOptions) (Conn, error) {
	nc, err := dialTCPSocket(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	line, err := helloLine(hello)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if _, err := nc.Write(line); err != nil {
		nc.Close()
		return nil, fmt.Errorf("send hello: %w", err)
	}
	return newTCPConn(nc, nc, true), nil
}

// helloLine is the hello as framed TCP sends it first: the prefix, the
// JSON and a newline. An HTTP/2 stream's request body starts with it too.
func helloLine(hello Hello) ([]byte, error) {
	b, err := EncodeHello(hello)
	if err != nil {
		return nil, err
	}
	line := make([]byte, 0, len(TCPHelloPrefix)+len(b)+1)
	return append(append(append(line, TCPHelloPrefix...), b...), '\n'), nil
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
	d := opts.dialer()
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
			if rest := got[i+1:]; len(rest) > 0 {
				return &h, newTCPConnAfter(nc, rest), nil
			}
			return &h, newTCPConn(nc, nc, true), nil
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
	// Source, when set, binds each dialled connection to its next local
	// address in turn. Listeners ignore it.
	Source *SourceAddrs
	// NotSentLowat, when set, is TCP_NOTSENT_LOWAT in bytes: the socket
	// counts as full once this many written bytes are not yet sent, so a
	// writer blocks while the kernel holds little unsent data, without
	// capping the bytes in flight as a small SendBuffer does on a long
	// path. 0 keeps the kernel default (net.ipv4.tcp_notsent_lowat).
	NotSentLowat int
}

func (o SocketOptions) control(network, address string, rc syscall.RawConn) error {
	if o.SendBuffer <= 0 && o.ReceiveBuffer <= 0 && o.NotSentLowat <= 0 {
		return nil
	}
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = setBuffers(fd, o.SendBuffer, o.ReceiveBuffer)
		if serr == nil && o.NotSentLowat > 0 {
			serr = setNotSentLowat(fd, o.NotSentLowat)
		}
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

// ListenHTTP is ListenTCP for an HTTP server (bp-server's and bp-relay's
// /ws, /h2 and HTTP endpoints): its connections read and write with the
// raw system calls of rawSocket, so a WebSocket upload's reads cost the
// runtime no sysmon wake-up each, as framed TCP's do not.
func ListenHTTP(ctx context.Context, addr string, opts SocketOptions) (net.Listener, error) {
	ln, err := ListenTCP(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	return rawListener{ln}, nil
}
