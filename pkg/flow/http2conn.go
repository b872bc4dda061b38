package flow

import (
	"net"
)

// An HTTP/2 run is one stream: the request body carries what the client
// sends, the response body what the server sends, both in the framed TCP
// format of docs/PROTOCOL.md with the client's hello line first
// (docs/HTTP2.md). So both sides run the TCP transport's framing over the
// stream's bodies (a tcpConn whose conn is the stream), and h2Conn only
// says which transport and which socket it is.

// h2Conn is one HTTP/2 stream as a Conn, on either side.
type h2Conn struct {
	*tcpConn // the framing, over the stream's bodies
	// sock is the TCP (or TLS) connection every stream of the connection
	// shares: socket options and kernel statistics are its.
	sock  net.Conn
	index int                // the hello's stream index
	stats func() StreamStats // the stream layer as this side sees it
	// abort, when set, resets the stream (RST_STREAM) instead of closing
	// it, so the peer sees an error and the other streams go on.
	abort func()
}

var (
	_ Conn       = (*h2Conn)(nil)
	_ StreamConn = (*h2Conn)(nil)
	_ Aborter    = (*h2Conn)(nil)
)

func (c *h2Conn) Protocol() Protocol       { return HTTP2 }
func (c *h2Conn) NetConn() net.Conn        { return c.sock }
func (c *h2Conn) StreamIndex() int         { return c.index }
func (c *h2Conn) StreamLayer() StreamStats { return c.stats() }

// Abort implements Aborter: the stream is reset, never the shared socket
// (tcpConn's Abort would reset it under every stream).
func (c *h2Conn) Abort(string) {
	if c.abort != nil {
		c.abort()
	}
	c.Close()
}

// unknownStreamStats is the stream layer of a side that cannot see its
// frames (the server's, under net/http): every window unknown.
func unknownStreamStats(source string) func() StreamStats {
	return func() StreamStats {
		return StreamStats{SendStreamWindow: -1, SendConnWindow: -1, RecvStreamWindow: -1, RecvConnWindow: -1, Source: source}
	}
}
