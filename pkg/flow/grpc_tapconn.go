package flow

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// tapConn is the connection grpc-go reads and writes: the plain text of
// one TCP connection (inside TLS when there is TLS), passing every byte
// through the connection's h2Tap, and timing each write, since a write in
// progress is grpc-go's one writer waiting on the socket: the kernel, TCP.
type tapConn struct {
	net.Conn          // the plain text: the socket, or TLS on it
	raw      net.Conn // the TCP socket, for NetConn
	tap      *h2Tap
	sends    *sendSampler
	// writingSince is when the socket write in progress began (UnixNano);
	// 0: none.
	writingSince atomic.Int64

	closeOnce sync.Once
	onClose   func() // run once, when grpc-go closes the connection
}

func newTapConn(plain, raw net.Conn, tap *h2Tap) *tapConn {
	c := &tapConn{Conn: plain, raw: raw, tap: tap}
	c.sends = newSendSampler(c)
	return c
}

func (c *tapConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.tap.read(b[:n])
	}
	return n, err
}

func (c *tapConn) Write(b []byte) (int, error) {
	c.writingSince.Store(time.Now().UnixNano())
	n, err := c.Conn.Write(b)
	c.writingSince.Store(0)
	if n > 0 {
		c.tap.wrote(b[:n])
	}
	return n, err
}

func (c *tapConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.sends.stop()
		if c.onClose != nil {
			c.onClose()
		}
	})
	return err
}

// layer is which layer holds a write that waits now: the socket (a write
// in progress), the connection's send window, or the stream's (id; 0:
// not known yet). A wait with every window open and no socket write in
// progress is grpc-go's own writer at work, below the stream layer: it
// counts as TCP's, as StreamStats says.
func (c *tapConn) layer(id uint32) streamLayer {
	if c.writingSince.Load() != 0 {
		return layerTCP
	}
	v, ok := c.tap.view(id)
	switch {
	case v.sendConn <= 0:
		return layerConn
	case ok && v.sendStream <= 0:
		return layerStream
	}
	return layerTCP
}
