package flow

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The client side of HTTP/2 is its own frame-level connection on x/net's
// Framer, not net/http's Transport: it sees every SETTINGS, WINDOW_UPDATE,
// DATA and RST_STREAM, so it keeps each stream's and the connection's send
// windows exactly and knows, for each write, whether it waited on the
// stream's window, the connection's, or the socket (StreamStats, Source
// "frames"). net/http's Transport hides all of that.

// The windows this client advertises for what it reads (downloads). A
// stream's window is what one slow reader may leave unread before the
// server's writes to it block; the connection's is larger than the
// streams' together (up to 64 of them), so one slow stream does not shut
// the others out.
const (
	h2RecvStreamWindow = 1 << 20
	h2RecvConnWindow   = 64 << 20
	// h2MaxReadFrame is the largest frame this client reads (its
	// SETTINGS_MAX_FRAME_SIZE).
	h2MaxReadFrame = 1 << 20
	// h2DefaultPath is the request path when the target names none.
	h2DefaultPath = "/h2"
	// h2SocketBlockMin is how long a socket write must take to count as
	// blocked on TCP: one that did not block returns in microseconds.
	h2SocketBlockMin = time.Millisecond
)

// ErrGoAway is the error of a stream the server's GOAWAY ended, and of
// OpenStream on a connection that received one.
var ErrGoAway = errors.New("http2: the server sent GOAWAY")

func init() { dialHTTP2 = dialH2 }

// h2Mux is one client HTTP/2 connection and its streams.
type h2Mux struct {
	nc        net.Conn
	fr        *http2.Framer
	authority string
	path      string
	scheme    string

	// wmu orders the socket's writes (whole frames) and the HPACK
	// encoder's state, which must see HEADERS in stream id order.
	wmu  sync.Mutex
	henc *hpack.Encoder
	hbuf bytes.Buffer

	mu             sync.Mutex
	streams        map[uint32]*h2Stream
	nextID         uint32
	sendConn       int64         // the connection's send window
	connClosing    windowClosing // sendConn's closings
	recvConn       int64         // the connection window this side advertises, left
	recvConnUnsent int64         // bytes read by sessions not yet given back
	peerInitWindow int64         // the server's SETTINGS_INITIAL_WINDOW_SIZE
	peerMaxFrame   int64
	peerMaxStreams int64
	active         int
	connWUReceived uint64
	connWUSent     uint64
	goAway         error         // set by the server's GOAWAY: no new streams
	changed        chan struct{} // closed and replaced when a slot frees or goAway is set
	err            error         // the connection's end
	done           chan struct{} // closed with err
}

// dialH2 opens the connection: TCP (TLS with ALPN h2 for https://), the
// preface, this side's SETTINGS and connection window, then the frame
// reader.
func dialH2(ctx context.Context, t Target, opts SocketOptions) (Mux, error) {
	u, err := url.Parse(t.Addr)
	if err != nil {
		return nil, fmt.Errorf("http2 target: %w", err)
	}
	m := &h2Mux{authority: u.Host, path: u.RequestURI(), scheme: "http",
		streams: map[uint32]*h2Stream{}, nextID: 1, sendConn: h2DefaultWindow, recvConn: h2RecvConnWindow,
		peerInitWindow: h2DefaultWindow, peerMaxFrame: 16384, peerMaxStreams: math.MaxInt32,
		changed: make(chan struct{}), done: make(chan struct{})}
	if u.Path == "" {
		m.path = h2DefaultPath
	}
	addr := u.Host
	if t.TLS {
		m.scheme = "https"
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "443")
		}
		cfg := &tls.Config{}
		if opts.TLS != nil {
			cfg = opts.TLS.Clone()
		}
		cfg.NextProtos = []string{http2.NextProtoTLS}
		opts.TLS = cfg
	} else {
		opts.TLS = nil
	}
	if m.nc, err = dialTCPSocket(ctx, addr, opts); err != nil {
		return nil, err
	}
	if tc, ok := m.nc.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol != http2.NextProtoTLS {
		m.nc.Close()
		return nil, fmt.Errorf("http2: %s did not agree to HTTP/2 by ALPN (it chose %q)", addr, tc.ConnectionState().NegotiatedProtocol)
	}
	if err := m.start(); err != nil {
		m.nc.Close()
		return nil, fmt.Errorf("http2 preface to %s: %w", addr, err)
	}
	return m, nil
}

// start sends the preface, SETTINGS and the connection window, and starts
// the frame reader.
func (m *h2Mux) start() error {
	m.fr = http2.NewFramer(m.nc, m.nc)
	m.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	m.fr.SetMaxReadFrameSize(h2MaxReadFrame)
	m.henc = hpack.NewEncoder(&m.hbuf)
	if _, err := m.nc.Write([]byte(http2.ClientPreface)); err != nil {
		return err
	}
	err := m.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2RecvStreamWindow},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: h2MaxReadFrame},
	)
	if err == nil {
		err = m.fr.WriteWindowUpdate(0, h2RecvConnWindow-h2DefaultWindow)
	}
	if err != nil {
		return err
	}
	go m.readLoop()
	return nil
}

// NetConn is the socket all streams share.
func (m *h2Mux) NetConn() net.Conn { return m.nc }

// Close ends the connection (GOAWAY, then the socket) and every stream on
// it.
func (m *h2Mux) Close() error {
	m.writeFrame(func(fr *http2.Framer) error { return fr.WriteGoAway(0, http2.ErrCodeNo, nil) })
	m.fail(net.ErrClosed)
	return nil
}

// fail ends the connection with err, once: every stream's next call
// returns it.
func (m *h2Mux) fail(err error) {
	m.mu.Lock()
	if m.err != nil {
		m.mu.Unlock()
		return
	}
	m.err = err
	close(m.done)
	streams := m.streams
	m.streams = map[uint32]*h2Stream{}
	m.mu.Unlock()
	m.nc.Close()
	for _, s := range streams {
		s.wake()
	}
}

// writeFrame writes one frame under the socket's lock; an error ends the
// connection.
func (m *h2Mux) writeFrame(write func(*http2.Framer) error) error {
	m.wmu.Lock()
	err := write(m.fr)
	m.wmu.Unlock()
	if err != nil {
		m.fail(fmt.Errorf("http2: write: %w", err))
	}
	return err
}

// OpenStream opens a stream (HEADERS of a POST to the target's path) and
// sends the hello line as the first bytes of its body.
func (m *h2Mux) OpenStream(ctx context.Context, hello Hello) (Conn, error) {
	line, err := helloLine(hello)
	if err != nil {
		return nil, err
	}
	s, err := m.open(ctx)
	if err != nil {
		return nil, err
	}
	s.index = hello.Stream
	if _, err := s.Write(line); err == nil {
		err = s.Flush()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("send hello: %w", err)
	}
	return &h2Conn{tcpConn: newTCPConn(s, s, true), sock: m.nc, index: hello.Stream, stats: s.stats, abort: s.reset}, nil
}

// open waits for a place under the server's SETTINGS_MAX_CONCURRENT_STREAMS
// and sends the new stream's HEADERS.
func (m *h2Mux) open(ctx context.Context) (*h2Stream, error) {
	m.mu.Lock()
	for m.err == nil && m.goAway == nil && int64(m.active) >= m.peerMaxStreams {
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		case <-m.done:
		}
		m.mu.Lock()
	}
	if err := m.openErr(); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	m.active++
	m.mu.Unlock()

	m.wmu.Lock() // ids are taken in the order their HEADERS go out
	defer m.wmu.Unlock()
	m.mu.Lock()
	s := newH2Stream(m, m.nextID)
	m.nextID += 2
	m.streams[s.id] = s
	m.mu.Unlock()
	m.hbuf.Reset()
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", m.scheme}, {":authority", m.authority},
		{":path", m.path}, {"content-type", "application/octet-stream"}} {
		m.henc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	err := m.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.id, BlockFragment: m.hbuf.Bytes(), EndHeaders: true})
	if err != nil {
		go m.fail(fmt.Errorf("http2: write: %w", err)) // not under wmu
		return nil, fmt.Errorf("open stream: %w", err)
	}
	return s, nil
}

// openErr is why no stream may open now (nil: one may). Called with mu
// held.
func (m *h2Mux) openErr() error {
	switch {
	case m.err != nil:
		return fmt.Errorf("open stream: %w", m.err)
	case m.goAway != nil:
		return fmt.Errorf("open stream: %w", m.goAway)
	}
	return nil
}

// forget removes a stream that ended, and frees its place. Called with mu
// held.
func (m *h2Mux) forget(s *h2Stream) {
	if _, ok := m.streams[s.id]; !ok {
		return
	}
	delete(m.streams, s.id)
	m.active--
	m.broadcast()
}

// broadcast wakes OpenStream's waiters. Called with mu held.
func (m *h2Mux) broadcast() {
	close(m.changed)
	m.changed = make(chan struct{})
}
