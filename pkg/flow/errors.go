package flow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// ErrorReasons are the values ErrorReason returns: a small fixed set, so a
// metric can count errors by reason without unbounded labels.
var ErrorReasons = []string{"peer_closed", "reset", "timeout", "drain_timeout", "protocol", "refused", "other"}

// ErrorReason sorts a connection error into one of ErrorReasons.
func ErrorReason(err error) string {
	var ne net.Error
	var pe ProtocolError
	switch {
	case errors.Is(err, ErrDrainTimeout):
		return "drain_timeout"
	case errors.Is(err, ErrPeerClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "peer_closed"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &pe):
		return "protocol"
	}
	return "other"
}

// ProtocolError is a peer breaking the wire protocol: a bad hello, frame or
// control message.
type ProtocolError struct{ Err error }

func (e ProtocolError) Error() string { return e.Err.Error() }
func (e ProtocolError) Unwrap() error { return e.Err }

func protocolErrorf(format string, args ...any) error {
	return ProtocolError{fmt.Errorf(format, args...)}
}
