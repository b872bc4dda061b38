//go:build linux

package flow

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// A stream relay between two plain (not TLS) framed TCP connections moves
// each data frame's body with splice(2): from the source socket into a pipe
// (the relay's one read's worth, held in the kernel), then from the pipe to
// the destination socket behind a new frame header. The bytes never enter
// the process, as with HAProxy's splice mode; frame headers and control
// messages are read and written as usual.
//
//	src socket --splice--> pipe (<= one read) --splice--> dst socket
//
// The two halves are a read and a write exactly like the copying path's, so
// the buffer semantics, the counters and the timing of writes are the same.

const (
	spliceMove     = 0x1 // SPLICE_F_MOVE
	spliceNonblock = 0x2 // SPLICE_F_NONBLOCK
	fSetPipeSize   = 1031
	// splicePipeSize is the pipe's size asked for: a pipe holds a number of
	// page fragments rather than bytes, and the default 16 may hold less
	// than one 64 KiB read of socket fragments.
	splicePipeSize = 256 << 10
)

// splicer is one direction's pipe and the two sockets it joins.
type splicer struct {
	src, dst       *tcpConn
	srcRaw, dstRaw syscall.RawConn
	pr, pw         int // the pipe's read and write ends; -1 until opened
	held           int // bytes in the pipe

	// The system calls' arguments and results, and the functions the raw
	// connections call, made once: a closure per call would allocate.
	want, hdrSent, left int
	got                 int64
	serr                error
	spliceIn, spliceOut func(fd uintptr) bool
}

// newSplicer returns a splicer from src to dst, or nil when they cannot be
// spliced (not both framed plain TCP).
func newSplicer(src, dst Conn) *splicer {
	s, ok1 := src.(*tcpConn)
	d, ok2 := dst.(*tcpConn)
	if !ok1 || !ok2 || !s.framed || !d.framed {
		return nil
	}
	st, ok1 := s.conn.(*net.TCPConn)
	dt, ok2 := d.conn.(*net.TCPConn)
	if !ok1 || !ok2 {
		return nil
	}
	sr, err1 := st.SyscallConn()
	dr, err2 := dt.SyscallConn()
	if err1 != nil || err2 != nil {
		return nil
	}
	sp := &splicer{src: s, dst: d, srcRaw: sr, dstRaw: dr, pr: -1, pw: -1}
	sp.spliceIn, sp.spliceOut = sp.in, sp.out
	return sp
}

// ready reports whether the next read can be spliced: the source has no
// bytes of its own left (read past the hello) and the pipe is open.
func (sp *splicer) ready() bool {
	if sp == nil {
		return false
	}
	switch r := sp.src.r.(type) {
	case *net.TCPConn:
	case *helloRest:
		if len(r.rest) > 0 {
			return false
		}
	default:
		return false
	}
	if sp.pr < 0 {
		var fds [2]int
		if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
			return false // out of descriptors: copy instead
		}
		sp.pr, sp.pw = fds[0], fds[1]
		// Best effort: a smaller pipe only makes reads smaller.
		_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, uintptr(sp.pw), fSetPipeSize, splicePipeSize)
	}
	return true
}

// close releases the pipe.
func (sp *splicer) close() {
	if sp == nil || sp.pr < 0 {
		return
	}
	syscall.Close(sp.pr)
	syscall.Close(sp.pw)
	sp.pr, sp.pw = -1, -1
}

// read is the relay's read of a data frame's body: it reads what the
// source socket has of the current frame, at most max bytes, into the
// pipe, blocking until at least one byte is there. The caller has read the
// frame's header (src.remain > 0).
func (sp *splicer) read(max int) (int, error) {
	sp.want, sp.got, sp.serr = min(max, sp.src.remain), 0, nil
	err := sp.srcRaw.Read(sp.spliceIn)
	if err == nil {
		err = sp.serr
	}
	if err != nil {
		return 0, err
	}
	if sp.got <= 0 {
		return 0, fmt.Errorf("read data frame: %w", io.ErrUnexpectedEOF)
	}
	n := int(sp.got)
	sp.src.remain -= n
	sp.held = n
	return n, nil
}

// in moves up to sp.want bytes from the source socket fd into the pipe; it
// returns false to wait until the socket is readable.
func (sp *splicer) in(fd uintptr) bool {
	for {
		n, err := syscall.Splice(int(fd), nil, sp.pw, nil, sp.want, spliceMove|spliceNonblock)
		switch err {
		case nil:
			sp.got = n
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			sp.serr = os.NewSyscallError("splice", err)
			return true
		}
	}
}

// write is the relay's write of what read put in the pipe: one data frame
// (header sent with MSG_MORE, so it leaves with the body), under the
// destination's write lock like any WritePayload. It returns the payload
// bytes written.
func (sp *splicer) write() (int, error) {
	d := sp.dst
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.whdr[0] = frameData
	binary.BigEndian.PutUint32(d.whdr[1:], uint32(sp.held))
	sp.hdrSent, sp.left, sp.serr = 0, sp.held, nil
	err := sp.dstRaw.Write(sp.spliceOut)
	if err == nil {
		err = sp.serr
	}
	written := sp.held - sp.left
	sp.held = sp.left
	return written, err
}

// out sends the frame header, then moves the pipe's bytes to the
// destination socket fd; it returns false to wait until the socket is
// writable.
func (sp *splicer) out(fd uintptr) bool {
	hdr := sp.dst.whdr[:]
	for sp.hdrSent < frameHeader {
		m, err := syscall.SendmsgN(int(fd), hdr[sp.hdrSent:], nil, nil, syscall.MSG_MORE|syscall.MSG_NOSIGNAL)
		switch err {
		case nil:
			sp.hdrSent += m
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			sp.serr = os.NewSyscallError("sendmsg", err)
			return true
		}
	}
	for sp.left > 0 {
		m, err := syscall.Splice(sp.pr, nil, int(fd), nil, sp.left, spliceMove|spliceNonblock)
		switch {
		case err == nil && m > 0:
			sp.left -= int(m)
		case err == nil:
			sp.serr = fmt.Errorf("splice: relay pipe empty with %d bytes to write", sp.left)
			return true
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			return false
		default:
			sp.serr = os.NewSyscallError("splice", err)
			return true
		}
	}
	return true
}
