//go:build !linux

package sockstat

// DumpSockets returns ErrUnsupported: sock_diag is Linux's.
func DumpSockets(buf []DiagSocket) ([]DiagSocket, error) { return buf, ErrUnsupported }
