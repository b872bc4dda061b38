//go:build !linux

package flow

import "net"

// vecReader is Linux's readv(2) reader (vecread_linux.go); elsewhere the
// framed reader reads each header with its own read.
type vecReader struct{}

func newVecReader(net.Conn) *vecReader { return nil }

func (*vecReader) read(a, b []byte) (int, error) { panic("unreachable") }
