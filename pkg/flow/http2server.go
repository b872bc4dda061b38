package flow

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"golang.org/x/net/http2"
)

// H2ServerSource is the server side's StreamStats.Source: net/http (x/net)
// runs the frames and shows none of its windows, so only the kernel's view
// of the shared socket stands there.
const H2ServerSource = "net/http: no frame view"

// AcceptHTTP2 turns one HTTP/2 request into a connection: the request body
// is what the client sends and the response body what this side sends,
// both framed as on TCP (docs/HTTP2.md), starting with the client's hello
// line, read within helloTimeout. sock is the connection the stream
// arrived on, shared with the other streams. A refused hello is a
// HelloError, and nothing was written: the caller answers the request.
func AcceptHTTP2(w http.ResponseWriter, r *http.Request, sock net.Conn, helloTimeout time.Duration) (*Hello, Conn, error) {
	hello, c, err := acceptHTTP2(w, r, sock, helloTimeout, nil)
	if err != nil {
		return nil, nil, err
	}
	return hello, c, nil
}

// acceptHTTP2 is AcceptHTTP2 with a check of the hello and the connection
// it came on (nil: none) before the response's headers go out: a hello it
// refuses is a HelloError.
func acceptHTTP2(w http.ResponseWriter, r *http.Request, sock net.Conn, helloTimeout time.Duration, check func(*Hello, *tcpConn) error) (*Hello, *h2Conn, error) {
	st := &h2ServerStream{body: r.Body, w: w, rc: http.NewResponseController(w), sock: sock}
	hello, c, err := AcceptTCP(st, helloTimeout)
	if err != nil {
		return nil, nil, err
	}
	if check != nil {
		if err := check(hello, c.(*tcpConn)); err != nil {
			c.Close()
			return nil, nil, HelloError{err}
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	if err := st.rc.Flush(); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("http2: send response headers: %w", err)
	}
	index := 0
	if hello != nil {
		index = hello.Stream
	}
	return hello, &h2Conn{tcpConn: c.(*tcpConn), sock: sock, index: index, stats: unknownStreamStats(H2ServerSource)}, nil
}

// h2ServerStream is a request's two bodies as a net.Conn, for the TCP
// framing over them. Its writes are buffered by net/http until Flush,
// which tcpConn calls after every message.
type h2ServerStream struct {
	body io.ReadCloser
	w    http.ResponseWriter
	rc   *http.ResponseController
	// readRC, when set, bounds the reads of body instead of rc: body is
	// then another request's, a download's sibling (http2down.go).
	readRC *http.ResponseController
	sock   net.Conn
}

// Read reads the request body. The stream's reset by the client, or the
// connection's loss, is a reset (reason reset), as TCP's RST would be.
func (s *h2ServerStream) Read(p []byte) (int, error) {
	n, err := s.body.Read(p)
	if err != nil && err != io.EOF {
		err = clientGone(err)
	}
	return n, err
}

// Write writes to the response body; Flush sends it.
func (s *h2ServerStream) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil {
		err = clientGone(err)
	}
	return n, err
}

// Flush sends what Write buffered, as DATA frames, as the windows allow.
func (s *h2ServerStream) Flush() error {
	if err := s.rc.Flush(); err != nil {
		return clientGone(err)
	}
	return nil
}

// Close stops reading the request body; the response ends when the
// handler returns.
func (s *h2ServerStream) Close() error { return s.body.Close() }

func (s *h2ServerStream) LocalAddr() net.Addr  { return s.sock.LocalAddr() }
func (s *h2ServerStream) RemoteAddr() net.Addr { return s.sock.RemoteAddr() }

func (s *h2ServerStream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.rc.SetWriteDeadline(t)
}

func (s *h2ServerStream) SetReadDeadline(t time.Time) error {
	if s.readRC != nil {
		return s.readRC.SetReadDeadline(t)
	}
	return s.rc.SetReadDeadline(t)
}

func (s *h2ServerStream) SetWriteDeadline(t time.Time) error { return s.rc.SetWriteDeadline(t) }

// clientGone words an error of the request's bodies: a stream the client
// reset (RST_STREAM) or a connection that went away are resets.
func clientGone(err error) error {
	var se http2.StreamError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("http2: the client reset the stream (%v): %w", se.Code, syscall.ECONNRESET)
	case err.Error() == "client disconnected":
		return fmt.Errorf("http2: the client's connection went away: %w", syscall.ECONNRESET)
	}
	return err
}
