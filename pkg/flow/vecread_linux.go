//go:build linux

package flow

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// vecReader reads a plain TCP socket with readv(2) through the netpoller
// (syscall.RawConn), so the framed reader takes the rest of a data frame
// and the next frame's 5-byte header in one system call. Reading the
// header alone cost a read(2) per frame: with 64 KiB frames half the
// server's reads (strace -c: 22,423 reads for 11,774 frames), and each
// system call also costs the Go scheduler a hand-off of the thread to
// sysmon and a spinning M (perf record -e context-switches). See
// docs/BENCHMARKS.md for what it bought.
//
// It holds its iovecs and its callback, so a read allocates nothing.
type vecReader struct {
	rc    syscall.RawConn
	local net.Addr
	peer  net.Addr
	iov   [2]unix.Iovec
	niov  uintptr
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

// newVecReader returns nil when nc is not a plain TCP socket (TLS, a test
// pipe): those read as before.
func newVecReader(nc net.Conn) *vecReader {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	v := &vecReader{rc: rc, local: tc.LocalAddr(), peer: tc.RemoteAddr()}
	v.fn = v.readv
	return v
}

// readv is the RawConn callback: false asks the netpoller to wait until
// the socket is readable and call it again.
func (v *vecReader) readv(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&v.iov[0])), v.niov)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		v.n, v.errno = int(n), e
		return true
	}
}

// read fills a, then b, with one readv; a must not be empty. Errors look
// like net.Conn's: io.EOF at the end, a *net.OpError otherwise.
func (v *vecReader) read(a, b []byte) (int, error) {
	v.iov[0].Base = &a[0]
	v.iov[0].SetLen(len(a))
	v.niov = 1
	if len(b) > 0 {
		v.iov[1].Base = &b[0]
		v.iov[1].SetLen(len(b))
		v.niov = 2
	}
	err := v.rc.Read(v.fn)
	v.iov = [2]unix.Iovec{} // hold no buffer past the call
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err // "raw-read": reported as net.Conn's read reports it
	}
	if err == nil && v.errno != 0 {
		err = os.NewSyscallError("readv", v.errno)
	}
	if err != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: v.local, Addr: v.peer, Err: err}
	}
	if v.n == 0 {
		return 0, io.EOF
	}
	return v.n, nil
}
