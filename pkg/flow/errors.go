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
var ErrorReasons = []string{"peer_closed", "reset", "timeout", "drain_timeout", "protocol", "hello", "too_large", "idle", "refused", "payload_memory", "other"}

// ErrTooLarge marks a message, frame or hello larger than its limit
// (reason too_large).
var ErrTooLarge = errors.New("message too large")

// ErrIdle ends a connection on which no byte moved either way for the idle
// timeout while nothing was paused or blocked on purpose (reason idle).
var ErrIdle = errors.New("connection idle")

// HelloError is a hello that was refused: malformed, of another version,
// too long, cut off, or not complete within the hello timeout (reason
// hello). The connection never opened.
type HelloError struct{ Err error }

func (e HelloError) Error() string { return e.Err.Error() }
func (e HelloError) Unwrap() error { return e.Err }

// errUnsupportedData marks a WebSocket text message after the hello that is
// not a control message (close code 1003).
var errUnsupportedData = errors.New("unsupported data")

// ErrorReason sorts a connection error into one of ErrorReasons.
func ErrorReason(err error) string {
	var ne net.Error
	var pe ProtocolError
	var he HelloError
	switch {
	case errors.Is(err, ErrDrainTimeout):
		return "drain_timeout"
	case errors.Is(err, ErrIdle):
		return "idle"
	case errors.Is(err, ErrPayloadMemory):
		return "payload_memory"
	case errors.As(err, &he):
		return "hello"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.As(err, &pe):
		// Before peer_closed: a protocol error may quote an end of
		// stream, but what ended the connection is the peer's mistake.
		return "protocol"
	case errors.Is(err, ErrPeerClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "peer_closed"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
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

// tooLargef is a ProtocolError that is also ErrTooLarge.
func tooLargef(format string, args ...any) error {
	return ProtocolError{fmt.Errorf("%w: "+format, append([]any{ErrTooLarge}, args...)...)}
}

// IsReset reports whether err is the peer resetting the connection (or the
// write side's echo of it).
func IsReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
