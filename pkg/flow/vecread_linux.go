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
	n, e, done := rawCall(func() (uintptr, syscall.Errno) {
		n, _, e := unix.Syscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&v.iov[0])), v.niov)
		return n, e
	})
	v.n, v.errno = n, e
	return done
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
	return rawResult("read", "readv", v.local, v.peer, v.n, v.errno, err)
}

// rawCall runs one system call for a RawConn callback, again on EINTR;
// done is false on EAGAIN (wait until the socket is ready, call again).
func rawCall(sys func() (uintptr, syscall.Errno)) (n int, errno syscall.Errno, done bool) {
	for {
		r, e := sys()
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, 0, false
		}
		return int(r), e, true
	}
}

// rawResult reports a RawConn call (err: the wait's; n and errno: the
// system call's) as net.Conn does: io.EOF for a read of nothing, a
// *net.OpError (op "read" or "write") otherwise.
func rawResult(op, syscallName string, local, peer net.Addr, n int, errno syscall.Errno, err error) (int, error) {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err // "raw-read": reported as net.Conn's read reports it
	}
	if err == nil && errno != 0 {
		err = os.NewSyscallError(syscallName, errno)
	}
	if err != nil {
		return 0, &net.OpError{Op: op, Net: "tcp", Source: local, Addr: peer, Err: err}
	}
	if n == 0 && op == "read" {
		return 0, io.EOF
	}
	return n, nil
}
