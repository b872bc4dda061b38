//go:build !linux

package sockstat

// DumpSockets returns ErrUnsupported: sock_diag is Linux's.
func DumpSockets(buf []DiagSocket) ([]DiagSocket, error) { return buf, ErrUnsupported }

// DumpHopSockets returns ErrUnsupported: sock_diag is Linux's.
func DumpHopSockets(buf []DiagSocket, _ HopPorts) ([]DiagSocket, error) { return buf, ErrUnsupported }
