package flow

import "net"

// rawSocket is a plain TCP socket for code that reads and writes it
// through net.Conn (gorilla/websocket, the HTTP server): its Read and
// Write make their system calls as the framed TCP path does (vecReader,
// vecWriter: readv and writev through the netpoller with unix.RawSyscall,
// see rawCall), everything else is the *net.TCPConn's, which NetConn
// returns for the socket sampler and tcpSocket. Elsewhere than on Linux it
// is never made (newRawSocket returns the socket itself).
type rawSocket struct {
	*net.TCPConn
	r *vecReader
	w *vecWriter
}

// newRawSocket wraps c when it is a plain TCP socket and the raw calls are
// available; anything else is returned as it is.
func newRawSocket(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	r, w := newVecReader(tc), newVecWriter(tc)
	if r == nil || w == nil {
		return c
	}
	return &rawSocket{TCPConn: tc, r: r, w: w}
}

func (s *rawSocket) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return s.r.read(p, nil)
}

func (s *rawSocket) Write(p []byte) (int, error) { return s.w.write(p, nil) }

// NetConn is the socket underneath (tcpSocket, pkg/sockstat unwrap it).
func (s *rawSocket) NetConn() net.Conn { return s.TCPConn }

// rawListener hands out its connections as rawSockets.
type rawListener struct{ net.Listener }

func (l rawListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newRawSocket(c), nil
}
