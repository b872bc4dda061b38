package flow

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// A refusal line is how a server that cannot serve a framed TCP client says
// why, in the client's own protocol, before it closes (docs/PROTOCOL.md):
//
//	BP/1 refused: this port serves TLS: use tls://\n
//
// It starts like the hello line, so a client's frame reader (which expects a
// frame type there) knows it for what it is and reports the reason instead
// of an unknown frame or a reset. Today it is sent for one case: a plain
// tcp:// client at a TLS listener, whose hello line fails the TLS handshake.

// maxRefusalLine bounds what a client reads of a refusal.
const maxRefusalLine = 256

// RefusedError is a server's refusal line: the server would not serve this
// connection, and Reason says why.
type RefusedError struct{ Reason string }

func (e RefusedError) Error() string { return "the server refused the connection: " + e.Reason }

// isRefusal reports whether a frame header is the start of a refusal line.
func isRefusal(hdr *[FrameHeaderSize]byte) bool { return string(hdr[:]) == TCPHelloPrefix }

// readRefusal reads the rest of a refusal line whose first bytes, the
// prefix, were read as a frame header.
func readRefusal(r io.Reader) error {
	line, err := bufio.NewReaderSize(io.LimitReader(r, maxRefusalLine), 64).ReadString('\n')
	if err != nil && line == "" {
		return protocolErrorf("a refusal line cut off: %v", err)
	}
	return RefusedError{Reason: strings.TrimSpace(strings.TrimPrefix(line, "refused:"))}
}

// refusePlainHello answers a TLS handshake that failed because the peer
// spoke the plain protocol: the refusal line, then a wait of at most a
// second reading what the peer still sends, so that its kernel does not
// reset the connection before the peer has read the line.
func refusePlainHello(err error) bool {
	var rh tls.RecordHeaderError
	if !errors.As(err, &rh) || rh.Conn == nil || string(rh.RecordHeader[:]) != TCPHelloPrefix {
		return false
	}
	nc := rh.Conn
	_ = nc.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(nc, "%srefused: this port serves TLS: use tls://\n", TCPHelloPrefix)
	if cw, ok := nc.(interface{ CloseWrite() error }); ok { // a *net.TCPConn, or a rawSocket around one
		_ = cw.CloseWrite()
	}
	// Until the peer closes, for at most the second (and 256 MiB): a client
	// at full speed writes MBs in the milliseconds its reader takes to see
	// the line, and a close before then would reset it first.
	_, _ = io.Copy(io.Discard, io.LimitReader(nc, 256<<20))
	return true
}
