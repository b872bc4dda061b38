//go:build !linux

package flow

import "net"

// vecReader is Linux's readv(2) reader (vecread_linux.go); elsewhere the
// framed reader reads each header with its own read.
type vecReader struct{}

func newVecReader(net.Conn) *vecReader { return nil }

func (*vecReader) read(a, b []byte) (int, error) { panic("unreachable") }

func (*vecReader) readAcross(a, hdr, b []byte) (int, error) { panic("unreachable") }

func (*vecReader) readAfterWait(a, spec []byte) (int, error) { panic("unreachable") }

// vecWriter is Linux's writev(2) writer; elsewhere net.Buffers writes.
type vecWriter struct{}

func newVecWriter(net.Conn) *vecWriter { return nil }

func (*vecWriter) write(a, b []byte) (int, error) { panic("unreachable") }
