package flow

import (
	"net"
	"sync"
)

// tapConn is the connection grpc-go reads and writes: the plain text of
// one TCP connection (inside TLS when there is TLS), passing every byte
// through the connection's h2Tap.
type tapConn struct {
	net.Conn          // the plain text: the socket, or TLS on it
	raw      net.Conn // the TCP socket, for NetConn
	tap      *h2Tap
	sends    *sendSampler
	buf      *ConnBuffer // a server's: its streams' received-but-unread bytes; nil on a client
	queued   *ConnBuffer // a client's: messages Send took that the tap has not seen go; nil on a server

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
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.tap.wrote(b[:n])
	}
	return n, err
}

func (c *tapConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.sends.stop()
		c.queued.Close()
		if c.onClose != nil {
			c.onClose()
		}
	})
	return err
}

// layer is which layer holds a write of stream id that waits now (id 0:
// not known yet): the stream's send window when it is shut (its bytes
// cannot go whatever else moves: other streams may keep the socket busy),
// else the connection's when that is shut, else TCP: a socket write in
// progress is grpc-go's writer waiting on the kernel, and a wait with
// every window open and no such write is grpc-go's writer at work, below
// the stream layer, counted as TCP's as StreamStats says.
func (c *tapConn) layer(id uint32) streamLayer {
	v, ok := c.tap.view(id)
	switch {
	case ok && v.sendStream <= 0:
		return layerStream
	case v.sendConn <= 0:
		return layerConn
	}
	return layerTCP
}
