package flow

import (
	"net"
)

// Protocol names the transport of a connection. It is the value of the
// metrics' protocol label.
type Protocol string

// The transports.
const (
	TCP       Protocol = "tcp"
	WebSocket Protocol = "websocket"
)

// Conn is one established connection (after the hello), as two message
// streams: payload and control. TCP and WebSocket connections both implement
// it, so the writer and reader never know which one they drive.
//
// Read and the write methods may be called from different goroutines; the
// write methods are safe to call concurrently with each other.
type Conn interface {
	// Protocol is the transport.
	Protocol() Protocol
	// Read reads payload into p. When a control message arrives first it
	// returns n == 0 and the message in ctl (ctl.Type != ""), so the caller
	// handles acks and fins between payload reads.
	Read(p []byte) (n int, ctl Control, err error)
	// WritePayload writes p as one payload message and returns how many
	// payload bytes the transport accepted. It blocks while the transport
	// does: that blocking is what the writer measures.
	WritePayload(p []byte) (int, error)
	// WriteControl sends an ack or a fin. It is a no-op on hello-less
	// connections, whose peers speak no control messages.
	WriteControl(c Control) error
	// SpeaksControl reports whether the peer exchanges acks and fins.
	SpeaksControl() bool
	// NetConn is the socket underneath, for socket options and kernel stats.
	NetConn() net.Conn
	// Close ends the connection. A clean Close tells the peer (WebSocket
	// close frame); it is safe to call more than once.
	Close() error
}
