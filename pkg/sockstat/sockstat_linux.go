//go:build linux

package sockstat

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Supported reports whether this system can read socket statistics. It is
// true on Linux.
func Supported() bool { return true }

// KernelFields returns the Sample fields the running kernel provides,
// judged from its release number (uname -r). It is computed once. A release it
// cannot parse is treated as providing only what every kernel Go runs on
// provides.
func KernelFields() Fields { return kernelFields() }

var kernelFields = sync.OnceValue(func() Fields {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return FieldsForKernel(0, 0)
	}
	major, minor, err := ParseKernelRelease(unix.ByteSliceToString(uts.Release[:]))
	if err != nil {
		return FieldsForKernel(0, 0)
	}
	return FieldsForKernel(major, minor)
})

// tcpInfoEnd is how many bytes of TCP_INFO a kernel must return for a field
// group to be real. The structure only grows at its end, so the length the
// kernel reports tells exactly which fields it knows, including fields
// backported to an older release number.
var tcpInfoEnd = [...]struct {
	field Fields
	end   uint32
}{
	{FieldBasic, uint32(unsafe.Offsetof(unix.TCPInfo{}.Snd_cwnd) + 4)},
	{FieldNotSentBytes, uint32(unsafe.Offsetof(unix.TCPInfo{}.Notsent_bytes) + 4)},
	{FieldLimited, uint32(unsafe.Offsetof(unix.TCPInfo{}.Sndbuf_limited) + 8)},
	{FieldPeerWindow, uint32(unsafe.Offsetof(unix.TCPInfo{}.Snd_wnd) + 4)},
	{FieldOwnWindow, uint32(unsafe.Offsetof(unix.TCPInfo{}.Rcv_wnd) + 4)},
}

// fieldsForInfoLen returns the TCP_INFO field groups covered by the first
// length bytes of the structure.
func fieldsForInfoLen(length uint32) Fields {
	var f Fields
	for _, e := range tcpInfoEnd {
		if length >= e.end {
			f |= e.field
		}
	}
	return f
}

// Reader reads the statistics of one TCP socket. Build one per connection
// and reuse it for every sample: Read does not allocate, so sampling every
// connection at every scrape costs only the system calls. A Reader is safe for
// concurrent use. It does not own the connection: close that as usual, and
// Read then returns an error.
type Reader struct {
	raw syscall.RawConn
	// control is r.readFD, bound once in NewReader: passing a method value
	// to RawConn.Control on every Read would allocate.
	control func(fd uintptr)

	mu      sync.Mutex // guards the fields below, written by readFD
	info    unix.TCPInfo
	infoLen uint32
	sample  Sample // filled by readFD, then copied out, so the caller's Sample does not escape
	err     error
}

// NewReader returns a Reader for the TCP socket under c. It accepts a
// *net.TCPConn, anything else that implements syscall.Conn, or a wrapper with
// a NetConn() net.Conn method (*tls.Conn, gorilla's *websocket.Conn), unwrapped
// as many times as needed. It fails clearly when the socket under c is not TCP
// (a Unix socket, a pipe), because its statistics would be meaningless.
//
// A multipath TCP socket is accepted too (Go listeners accept multipath
// clients by default since Go 1.24): there TCP_INFO describes one subflow,
// while the queue ioctls describe the whole connection.
func NewReader(c any) (*Reader, error) {
	sc, err := syscallConn(c)
	if err != nil {
		return nil, err
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("sockstat: syscall conn: %w", err)
	}
	var protoErr error
	err = raw.Control(func(fd uintptr) { protoErr = checkTCP(int(fd)) })
	if err == nil {
		err = protoErr
	}
	if err != nil {
		return nil, fmt.Errorf("sockstat: %T: %w", c, err)
	}
	r := &Reader{raw: raw}
	r.control = r.readFD
	return r, nil
}

// maxUnwrap bounds the NetConn unwrapping, in case a wrapper returns itself.
const maxUnwrap = 16

// syscallConn finds the syscall.Conn under c by following NetConn methods.
func syscallConn(c any) (syscall.Conn, error) {
	orig := c
	for range maxUnwrap {
		switch v := c.(type) {
		case nil:
			return nil, fmt.Errorf("sockstat: %T: no connection", orig)
		case syscall.Conn:
			return v, nil
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil, fmt.Errorf("sockstat: %T has neither SyscallConn nor NetConn: not a TCP connection", c)
		}
	}
	return nil, fmt.Errorf("sockstat: %T: more than %d NetConn wrappers", orig, maxUnwrap)
}

// errNotTCP is wrapped by NewReader when the socket is not TCP.
var errNotTCP = errors.New("not a TCP socket")

// checkTCP makes sure fd is a TCP (or multipath TCP) stream socket.
func checkTCP(fd int) error {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("getsockopt SO_TYPE: %w", err)
	}
	proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return fmt.Errorf("getsockopt SO_PROTOCOL: %w", err)
	}
	if typ != unix.SOCK_STREAM || (proto != unix.IPPROTO_TCP && proto != unix.IPPROTO_MPTCP) {
		return fmt.Errorf("%w (type %d, protocol %d)", errNotTCP, typ, proto)
	}
	return nil
}

// Read fills s with one reading of the socket: getsockopt(TCP_INFO) and the
// SIOCOUTQ, SIOCOUTQNSD and SIOCINQ ioctls, all inside one RawConn.Control
// call so the descriptor cannot be closed in between. It sets s.Has to the
// fields the kernel actually returned; the others are zeroed. On error s is
// left zeroed with Has == 0.
func (r *Reader) Read(s *Sample) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sample, r.err = Sample{}, nil
	err := r.raw.Control(r.control)
	if err == nil {
		err = r.err
	}
	if err != nil {
		*s = Sample{}
		return fmt.Errorf("sockstat: read: %w", err)
	}
	*s = r.sample
	return nil
}

// readFD does the system calls of Read on the descriptor and fills r.sample.
// It must stay allocation-free on success.
func (r *Reader) readFD(fd uintptr) {
	s := &r.sample
	// Our own getsockopt rather than unix.GetsockoptTCPInfo: the length the
	// kernel returns is what tells which fields are real.
	r.infoLen = uint32(unsafe.Sizeof(r.info))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&r.info)), uintptr(unsafe.Pointer(&r.infoLen)), 0)
	if errno != 0 {
		r.err = fmt.Errorf("getsockopt TCP_INFO: %w", errno)
		return
	}
	fromTCPInfo(&r.info, r.infoLen, s)

	n, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
	if err != nil {
		r.err = fmt.Errorf("ioctl SIOCOUTQ: %w", err)
		return
	}
	s.SendQueue, s.Has = n, s.Has|FieldSendQueue

	n, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	if err != nil {
		r.err = fmt.Errorf("ioctl SIOCINQ: %w", err)
		return
	}
	s.RecvQueue, s.Has = n, s.Has|FieldRecvQueue

	// SIOCOUTQNSD is younger than the two above. Where SIOCOUTQ worked on this
	// socket, a failure here means the kernel does not know the request, so
	// the field is left out rather than failing the whole sample.
	n, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQNSD)
	if err == nil {
		s.SendQueueNotSent, s.Has = n, s.Has|FieldSendQueueNotSent
	}
}

// fromTCPInfo sets s's TCP_INFO fields and Has from the first length bytes
// of info, as the kernel returned them (getsockopt or sock_diag's
// INET_DIAG_INFO). It does not allocate.
func fromTCPInfo(info *unix.TCPInfo, length uint32, s *Sample) {
	s.Has = fieldsForInfoLen(length)
	// Copy only what the kernel wrote, so that an absent field stays zero
	// and Has is the only thing a caller needs to check.
	if s.Has&FieldBasic != 0 {
		s.Unacked = info.Unacked
		s.SndCwnd = info.Snd_cwnd
		s.RTT = time.Duration(info.Rtt) * time.Microsecond
		s.Probes = info.Probes
	}
	if s.Has&FieldNotSentBytes != 0 {
		s.NotSentBytes = info.Notsent_bytes
	}
	if s.Has&FieldLimited != 0 {
		s.BusyTime = time.Duration(info.Busy_time) * time.Microsecond
		s.RwndLimited = time.Duration(info.Rwnd_limited) * time.Microsecond
		s.SndbufLimited = time.Duration(info.Sndbuf_limited) * time.Microsecond
	}
	if s.Has&FieldPeerWindow != 0 {
		s.PeerWindow = info.Snd_wnd
	}
	if s.Has&FieldOwnWindow != 0 {
		s.OwnWindow = info.Rcv_wnd
	}
}

// Unread is how many bytes sit in the receive queue of the TCP socket
// under c (SIOCINQ), which nobody has read yet. A listener at its
// connection limit asks it of its oldest connection still sending request
// headers: bytes there mean the server has not read them, so the wait is
// the server's, not the peer's (internal/hop's httpConns).
func Unread(c any) (int, error) {
	sc, err := syscallConn(c)
	if err != nil {
		return 0, err
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("sockstat: syscall conn: %w", err)
	}
	var n int
	var ioErr error
	if err := raw.Control(func(fd uintptr) { n, ioErr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		return 0, fmt.Errorf("sockstat: unread: %w", err)
	}
	if ioErr != nil {
		return 0, fmt.Errorf("sockstat: ioctl SIOCINQ: %w", ioErr)
	}
	return n, nil
}
