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
// The system call is unix.RawSyscall (see rawCall). It holds its iovecs
// and its callback, so a read allocates nothing.
type vecReader struct {
	rawSock
	iov   [3]unix.Iovec
	niov  uintptr
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
	spec  []byte // readAfterWait's second buffer, armed once the socket was empty
}

// newVecReader returns nil when nc is not a plain TCP socket (TLS, a test
// pipe): those read as before.
func newVecReader(nc net.Conn) *vecReader {
	rs, ok := rawSockOf(nc)
	if !ok {
		return nil
	}
	v := &vecReader{rawSock: rs}
	v.fn = v.readv
	return v
}

// rawSock is a plain TCP socket's RawConn and addresses (for errors), as
// vecReader and vecWriter hold them.
type rawSock struct {
	rc    syscall.RawConn
	local net.Addr
	peer  net.Addr
}

// rawSockOf is nc's rawSock; false when nc is not a plain TCP socket (TLS,
// a test pipe).
func rawSockOf(nc net.Conn) (rawSock, bool) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return rawSock{}, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return rawSock{}, false
	}
	return rawSock{rc: rc, local: tc.LocalAddr(), peer: tc.RemoteAddr()}, true
}

// readv is the RawConn callback: false asks the netpoller to wait until
// the socket is readable and call it again.
func (v *vecReader) readv(fd uintptr) bool {
	n, e, done := rawCall(func() (uintptr, syscall.Errno) {
		n, _, e := unix.RawSyscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&v.iov[0])), v.niov)
		return n, e
	})
	if !done && v.spec != nil {
		// The socket was empty: what ends the wait is a new frame,
		// most likely whole, so the call after it reads past a too.
		v.iov[1].Base = &v.spec[0]
		v.iov[1].SetLen(len(v.spec))
		v.niov, v.spec = 2, nil
	}
	v.n, v.errno = n, e
	return done
}

// read fills a, then b, with one readv; a must not be empty. Errors look
// like net.Conn's: io.EOF at the end, a *net.OpError otherwise.
func (v *vecReader) read(a, b []byte) (int, error) { return v.readAcross(a, b, nil) }

// readAcross fills a, then hdr, then b, with one readv (tcpConn's
// readAcross); a must not be empty, and the buffers after an empty one are
// left out.
func (v *vecReader) readAcross(a, hdr, b []byte) (int, error) {
	v.niov = 0
	for _, p := range [3][]byte{a, hdr, b} {
		if len(p) == 0 {
			break
		}
		v.iov[v.niov].Base = &p[0]
		v.iov[v.niov].SetLen(len(p))
		v.niov++
	}
	err := v.rc.Read(v.fn)
	v.iov = [3]unix.Iovec{} // hold no buffer past the call
	return rawResult("read", "readv", v.local, v.peer, v.n, v.errno, err)
}

// readAfterWait reads into a as read(a, nil) does, unless the socket has
// nothing yet: then the read after the wait fills a, then spec (which must
// not be empty). A slow peer's frame arrives alone, whole, into an empty
// socket, where a header read and a body read took two system calls for it
// (and a third found the socket empty again); see tcpConn.readHeader.
func (v *vecReader) readAfterWait(a, spec []byte) (int, error) {
	v.spec = spec
	n, err := v.read(a, nil)
	v.spec = nil
	return n, err
}

// rawCall runs one system call for a RawConn callback, again on EINTR;
// done is false on EAGAIN (wait until the socket is ready, call again).
//
// The callbacks make their calls with unix.RawSyscall, not unix.Syscall:
// the socket (and a splice's pipe) is non-blocking, so the call never
// waits in the kernel, and Syscall's entersyscall wakes the runtime's
// sysmon whenever it sleeps (every P idle, as while this side waited for
// the peer), resetting it to wake every 20 µs for the next millisecond
// and more. At full speed that was a quarter of bp-server's context
// switches (perf record -e context-switches: sysmon's usleep and
// notetsleep, woken from entersyscall); without it, nanosleep and futex
// calls fall from about 4,500 and 4,000 per GB to under 200, and context
// switches per GB halve (docs/BENCHMARKS.md). The price: the goroutine's P
// is not handed off during the call, which for a non-blocking socket is a
// copy of at most one read's bytes.
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

// vecWriter writes a frame header and its payload to a plain TCP socket
// with writev(2) through the netpoller, as net.Buffers does, but with
// unix.RawSyscall (see rawCall). It holds its iovecs and its callback,
// so a write allocates nothing.
type vecWriter struct {
	rawSock
	iov   [2]unix.Iovec
	bufs  [2][]byte // what is left to write
	n     int       // bytes written so far
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

// newVecWriter returns nil when nc is not a plain TCP socket.
func newVecWriter(nc net.Conn) *vecWriter {
	rs, ok := rawSockOf(nc)
	if !ok {
		return nil
	}
	w := &vecWriter{rawSock: rs}
	w.fn = w.writev
	return w
}

// writev is the RawConn callback: it writes until both buffers are out
// (true), the socket is full (false: the netpoller waits until it is
// writable and calls again) or an error.
func (w *vecWriter) writev(fd uintptr) bool {
	for len(w.bufs[0])+len(w.bufs[1]) > 0 {
		iov := w.iov[:0]
		for _, b := range w.bufs {
			if len(b) > 0 {
				v := unix.Iovec{Base: &b[0]}
				v.SetLen(len(b))
				iov = append(iov, v)
			}
		}
		n, e, done := rawCall(func() (uintptr, syscall.Errno) {
			n, _, e := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
			return n, e
		})
		if !done {
			return false
		}
		if e != 0 {
			w.errno = e
			return true
		}
		w.n += n
		for i := range w.bufs {
			k := min(n, len(w.bufs[i]))
			w.bufs[i], n = w.bufs[i][k:], n-k
		}
	}
	return true
}

// write writes a, then b, whole, unless an error or the write deadline
// stops it; n counts the bytes of both that went out.
func (w *vecWriter) write(a, b []byte) (int, error) {
	w.bufs[0], w.bufs[1] = a, b
	w.n, w.errno = 0, 0
	err := w.rc.Write(w.fn)
	w.bufs, w.iov = [2][]byte{}, [2]unix.Iovec{} // hold no buffer past the call
	n, err := rawResult("write", "writev", w.local, w.peer, w.n, w.errno, err)
	if err != nil {
		return w.n, err
	}
	return n, nil
}
