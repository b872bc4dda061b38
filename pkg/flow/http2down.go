package flow

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// A browser's download over HTTP/2 is half duplex too (http2acks.go has
// the upload's side): the page can read the response only once its
// request body has ended, so the download's request body is the hello
// alone, and what the page sends while it reads (its acks, and for a
// `both` run its payload and fin) goes on a sibling stream, a second
// streaming POST (docs/HTTP2.md, "The browser"). The session's
// connection is split: it writes to the download's response and reads
// the sibling's request body, both framed as on TCP. AcceptHTTP2Down
// takes the download's half, H2Download.Join adds the sibling's.

// H2Download is a download whose hello was read and whose response
// headers went out, waiting for the sibling stream that carries what its
// client sends.
type H2Download struct {
	st    *h2ServerStream
	sock  net.Conn
	index int
}

// AcceptHTTP2Down reads a download's hello, the request's whole body,
// within helloTimeout, and sends the response's headers (with what the
// caller set in w.Header()). The hello must ask for the server to write
// (down or both), and the body must end after it: anything else is a
// HelloError, and nothing was written.
func AcceptHTTP2Down(w http.ResponseWriter, r *http.Request, sock net.Conn, helloTimeout time.Duration) (*Hello, *H2Download, error) {
	hello, c, err := acceptHTTP2(w, r, sock, helloTimeout, func(h *Hello, tc *tcpConn) error {
		switch {
		case h == nil:
			return errors.New("a download with a sibling ack stream starts with a hello line")
		case !h.Direction.ServerWrites():
			return errors.New("a sibling ack stream serves downloads only (direction down or both): an upload's acks come on GET /h2/acks")
		}
		return bodyEnds(tc.r, r.Body, helloTimeout)
	})
	if err != nil {
		return nil, nil, err
	}
	st := c.conn.(*h2ServerStream)
	return hello, &H2Download{st: st, sock: sock, index: hello.Stream}, nil
}

// bodyEndTimeout bounds bodyEnds when the caller set no hello timeout: a
// body that never ends must not hold a handler.
const bodyEndTimeout = 5 * time.Second

// bodyEnds checks that a download's request body ends after its hello,
// within timeout: what the client sends comes on the sibling.
// r is the body behind any bytes read with the hello.
func bodyEnds(r io.Reader, body io.Closer, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = bodyEndTimeout
	}
	done := make(chan error, 1)
	go func() {
		n, err := io.Copy(io.Discard, io.LimitReader(r, 1))
		switch {
		case n > 0:
			err = errors.New("a download with a sibling ack stream sends its hello alone: what it sends goes on the sibling")
		case err != nil:
			err = fmt.Errorf("read to the end of the hello's body: %w", err)
		}
		done <- err
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		body.Close() // ends the read above
		return fmt.Errorf("the request body did not end within %v of the hello: a download's hello comes alone", timeout)
	}
}

// Join is the download's connection once its sibling came: writes go to
// the download's response, reads come from body, the sibling's request
// body (rc bounds its reads), framed from its first byte.
func (d *H2Download) Join(body io.ReadCloser, rc *http.ResponseController) Conn {
	split := &h2ServerStream{body: body, w: d.st.w, rc: d.st.rc, readRC: rc, sock: d.sock}
	return &h2Conn{tcpConn: newTCPConn(split, split, true), sock: d.sock, index: d.index, stats: unknownStreamStats(H2ServerSource)}
}

// Refuse ends a download no sibling joined: the refusal line (as a TCP
// server refuses, refusal.go), which the page shows as the reason.
func (d *H2Download) Refuse(reason string) {
	fmt.Fprintf(d.st.w, "%srefused: %s\n", TCPHelloPrefix, reason)
	_ = d.st.rc.Flush()
}
