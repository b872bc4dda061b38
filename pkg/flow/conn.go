package flow

import (
	"io"
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

// Optional abilities of a Conn, for code that forwards one connection onto
// another (a relay). Each transport implements those it can; callers test
// for them with a type assertion on the interface, never on a transport's
// concrete type, so a new transport is a file that implements Conn and the
// abilities that fit it.

// HalfCloser is a Conn that can end its sending half and keep reading: TCP
// shutdown(SHUT_WR), or a WebSocket close frame without closing the socket.
// A raw relay passes an end of stream on this way, like socat does.
type HalfCloser interface {
	CloseWrite() error
}

// Aborter is a Conn that can close so that its peer sees an error, not a
// clean end: a TCP reset, or a WebSocket close with code 1011 (internal
// error) and reason.
type Aborter interface {
	Abort(reason string)
}

// RawStream is a Conn whose payload and control messages travel as one
// byte stream that may be forwarded as it is (framed TCP): a relay between
// two such connections copies the bytes and follows the frames in them
// with a FrameScanner, instead of decoding and encoding every frame.
type RawStream interface {
	// Framed reports whether the stream carries frames (a hello was
	// exchanged); a hello-less stream is payload only.
	Framed() bool
	// AtFrameBoundary reports whether no Read has stopped inside a frame,
	// so RawReader's next byte starts a frame header.
	AtFrameBoundary() bool
	// RawReader is the stream underneath the framing, after the hello.
	RawReader() io.Reader
	// WriteRaw writes b, whole frames, as they are, under the connection's
	// write lock so they never interleave with another write's frames.
	WriteRaw(b []byte) (int, error)
}

// Abort closes c so that its peer sees an error (Aborter), or closes it
// plainly when its transport cannot.
func Abort(c Conn, reason string) {
	if a, ok := c.(Aborter); ok {
		a.Abort(reason)
		return
	}
	c.Close()
}

// CloseWrite ends c's sending half (HalfCloser); on a transport that
// cannot, it does nothing.
func CloseWrite(c Conn) error {
	if h, ok := c.(HalfCloser); ok {
		return h.CloseWrite()
	}
	return nil
}
