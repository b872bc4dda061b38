//go:build linux

package flow

import (
	"io"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Splice moves raw bytes from one framed TCP connection's socket to
// another's through a kernel pipe with splice(2): the bytes never enter
// user space, so a relay's passthrough costs no copy of its own (a
// read(2) and a write(2) of 64 KiB each copied every byte twice; perf
// record of bp-relay: a quarter of its CPU in _copy_to_iter and
// _copy_from_iter). The pipe is a buffer like any other: Fill never puts
// more than it is asked into it, and Drain empties it before the next
// Fill, so it holds at most one Fill's bytes, which the caller bounds and
// counts.
//
// Both sockets are waited on through the netpoller (syscall.RawConn), as
// vecReader does, with unix.RawSyscall6 (see rawCall); a Splice is used
// by one goroutine at a time, and holds its callbacks and their arguments
// so that a call allocates nothing.
type Splice struct {
	src, dst     *tcpConn
	srcRC, dstRC syscall.RawConn
	pr, pw       int // the pipe's read and write ends
	size         int // the pipe's capacity in bytes (F_GETPIPE_SZ)
	held         int // bytes in the pipe
	onWait       func()
	waited       bool // this Drain found the destination full

	want  int
	buf   []byte
	n     int
	errno syscall.Errno

	peekFn, fillFn, drainFn func(fd uintptr) bool
}

// NewSplice returns a Splice from src to dst with a pipe of about size
// bytes, or nil when either is not a framed connection on a plain TCP
// socket (TLS, an HTTP/2 stream, a test pipe) or no pipe could be made
// (out of file descriptors, say): the caller copies then, as before.
func NewSplice(src, dst Conn, size int) *Splice {
	s, ok1 := src.(*tcpConn)
	d, ok2 := dst.(*tcpConn)
	if !ok1 || !ok2 || !s.framed || !d.framed || s.flush != nil || d.flush != nil {
		return nil
	}
	srcSock, ok1 := rawSockOf(s.conn)
	dstSock, ok2 := rawSockOf(d.conn)
	if !ok1 || !ok2 {
		return nil
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil
	}
	// The kernel rounds size up to a power of two pages; a user over its
	// pipe quota gets less (EPERM), which only makes the Fills smaller.
	_, _ = unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size)
	got, err := unix.FcntlInt(uintptr(p[1]), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil
	}
	sp := &Splice{src: s, dst: d, srcRC: srcSock.rc, dstRC: dstSock.rc, pr: p[0], pw: p[1], size: got}
	sp.peekFn, sp.fillFn, sp.drainFn = sp.peek, sp.fill, sp.drain
	return sp
}

// Ready reports whether the source's next byte is in its socket: bytes
// that came in with the hello, or that a read after a wait took ahead of
// the frame it was for, wait in user space, and a caller reads them
// through RawReader first.
func (sp *Splice) Ready() bool {
	return (sp.src.pre == nil || sp.src.pre.Len() == 0) && len(sp.src.ahead) == 0
}

// Size is the pipe's capacity in bytes.
func (sp *Splice) Size() int { return sp.size }

// Held is the bytes in the pipe: filled, not yet drained.
func (sp *Splice) Held() int { return sp.held }

// Peek copies the source's next bytes, up to len(b), into b without
// consuming them, waiting until at least one arrived; io.EOF at the end
// of the stream.
func (sp *Splice) Peek(b []byte) (int, error) {
	sp.buf = b
	err := sp.srcRC.Read(sp.peekFn)
	sp.buf = nil
	return sp.result("recvfrom", "read", sp.src, err)
}

// Fill moves up to max bytes (at most the pipe's room) from the source
// socket into the pipe, waiting until at least one arrived; io.EOF at the
// end of the stream.
func (sp *Splice) Fill(max int) (int, error) {
	sp.want = min(max, sp.size-sp.held)
	if sp.want <= 0 {
		return 0, nil
	}
	err := sp.srcRC.Read(sp.fillFn)
	n, err := sp.result("splice", "read", sp.src, err)
	sp.held += n
	return n, err
}

// Drain writes everything the pipe holds to the destination socket,
// waiting while its send buffer is full (the destination's backpressure),
// under the destination's write lock so that no other write lands in the
// middle. It returns the bytes written, all of them unless err is set.
func (sp *Splice) Drain() (int, error) {
	sp.dst.wmu.Lock()
	defer sp.dst.wmu.Unlock()
	total := 0
	sp.waited = false
	for sp.held > 0 {
		sp.want = sp.held
		err := sp.dstRC.Write(sp.drainFn)
		n, err := sp.result("splice", "write", sp.dst, err)
		if n == 0 && err == nil {
			err = io.ErrShortWrite
		}
		sp.held -= n
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// OnWait sets f to run when a Drain finds the destination's send buffer
// full, before it waits: at most once per Drain, from the Drain's
// goroutine. A relay starts its pause clock there instead of arming a
// timer for every write that might block.
func (sp *Splice) OnWait(f func()) { sp.onWait = f }

// Close closes the pipe; bytes still in it are dropped with the
// connection.
func (sp *Splice) Close() error {
	e1 := unix.Close(sp.pr)
	e2 := unix.Close(sp.pw)
	if e1 != nil {
		return e1
	}
	return e2
}

// The RawConn callbacks: false asks the netpoller to wait until the
// socket is ready and call again.

func (sp *Splice) peek(fd uintptr) bool {
	return sp.call(func() (uintptr, syscall.Errno) {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&sp.buf[0])), uintptr(len(sp.buf)), unix.MSG_PEEK, 0, 0)
		return n, e
	})
}

func (sp *Splice) fill(fd uintptr) bool {
	return sp.call(func() (uintptr, syscall.Errno) {
		n, _, e := unix.RawSyscall6(unix.SYS_SPLICE, fd, 0, uintptr(sp.pw), 0, uintptr(sp.want), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		return n, e
	})
}

func (sp *Splice) drain(fd uintptr) bool {
	done := sp.call(func() (uintptr, syscall.Errno) {
		n, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(sp.pr), 0, fd, 0, uintptr(sp.want), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		return n, e
	})
	if !done && !sp.waited {
		sp.waited = true
		if sp.onWait != nil {
			sp.onWait()
		}
	}
	return done
}

// call runs one system call for a RawConn callback (rawCall), keeping
// its result.
func (sp *Splice) call(sys func() (uintptr, syscall.Errno)) bool {
	n, e, done := rawCall(sys)
	sp.n, sp.errno = n, e
	return done
}

// result reports a callback's outcome as net.Conn does (rawResult).
func (sp *Splice) result(syscallName, op string, c *tcpConn, err error) (int, error) {
	return rawResult(op, syscallName, c.conn.LocalAddr(), c.conn.RemoteAddr(), sp.n, sp.errno, err)
}
