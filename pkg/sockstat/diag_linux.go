//go:build linux

package sockstat

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// diagStates are the TCP states a dump asks for: every state of a
// connection that can hold bytes. Listening sockets are not connections;
// TIME_WAIT and NEW_SYN_RECV are mini-sockets with no queues or TCP_INFO.
const diagStates = 1<<unix.BPF_TCP_ESTABLISHED | 1<<unix.BPF_TCP_SYN_SENT | 1<<unix.BPF_TCP_SYN_RECV |
	1<<unix.BPF_TCP_FIN_WAIT1 | 1<<unix.BPF_TCP_FIN_WAIT2 | 1<<unix.BPF_TCP_CLOSE |
	1<<unix.BPF_TCP_CLOSE_WAIT | 1<<unix.BPF_TCP_LAST_ACK | 1<<unix.BPF_TCP_CLOSING

// diagExt asks for TCP_INFO and the socket's memory with every socket.
const diagExt = 1<<(diagAttrInfo-1) | 1<<(diagAttrSkMemInfo-1)

// diagReqBytecode is INET_DIAG_REQ_BYTECODE, the request's filter
// attribute.
const diagReqBytecode = 1

// dumpRetries bounds the dumps started again because the socket table
// changed under one (NLM_F_DUMP_INTR): its answer may miss or repeat a
// socket, and a gauge must not.
const dumpRetries = 3

// diagRequest is struct inet_diag_req_v2 (linux/inet_diag.h), a netlink
// request's data. Its socket id stays zero: a dump matches every socket.
type diagRequest struct {
	family, protocol, ext, pad uint8
	states                     uint32
	id                         [48]byte // struct inet_diag_sockid
}

func (r *diagRequest) Len() int { return int(unsafe.Sizeof(*r)) }
func (r *diagRequest) Serialize() []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(r)), unsafe.Sizeof(*r))
}

// DumpSockets appends every TCP connection of this network namespace to
// buf (listening sockets left out), with TCP_INFO and memory, and returns
// it: one sock_diag (NETLINK_INET_DIAG) dump per address family, read
// with github.com/vishvananda/netlink. Any process's sockets are read, no
// root needed; another namespace's are not.
func DumpSockets(buf []DiagSocket) ([]DiagSocket, error) { return dump(buf, nil) }

// DumpHopSockets is DumpSockets of the hop's sockets only, as far as the
// kernel can tell by port (hopFilter): a superset of what hopClassifier
// keeps, at the cost of those sockets rather than of the namespace's. A
// kernel that refuses the filter (older than 4.16) gets a whole dump.
func DumpHopSockets(buf []DiagSocket, p HopPorts) ([]DiagSocket, error) {
	bc := hopFilter(p)
	if bc == nil {
		return DumpSockets(buf)
	}
	out, err := dump(buf, bc)
	if errors.Is(err, unix.EINVAL) {
		return dump(out, nil)
	}
	return out, err
}

// dump is DumpSockets with the kernel filter bc (nil: every socket).
func dump(buf []DiagSocket, bc []byte) ([]DiagSocket, error) {
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		n := len(buf)
		var err error
		for range dumpRetries {
			buf, err = dumpFamily(buf[:n], fam, bc)
			if !errors.Is(err, nl.ErrDumpInterrupted) {
				break
			}
		}
		switch {
		case fam == unix.AF_INET6 && errors.Is(err, unix.ENOENT):
			buf = buf[:n] // a kernel without IPv6 has no IPv6 sockets
		case errors.Is(err, nl.ErrDumpInterrupted):
			return buf[:n], fmt.Errorf("sockstat: sock_diag dump of %s sockets: the socket table kept changing during %d dumps", familyName(fam), dumpRetries)
		case err != nil:
			return buf[:n], fmt.Errorf("sockstat: sock_diag dump of %s sockets: %w", familyName(fam), err)
		}
	}
	return buf, nil
}

// dumpFamily runs one dump of fam's TCP sockets, appending them to buf.
func dumpFamily(buf []DiagSocket, fam uint8, bc []byte) ([]DiagSocket, error) {
	req := nl.NewNetlinkRequest(nl.SOCK_DIAG_BY_FAMILY, unix.NLM_F_DUMP)
	req.AddData(&diagRequest{family: fam, protocol: unix.IPPROTO_TCP, ext: diagExt, states: diagStates})
	if bc != nil {
		req.AddData(nl.NewRtAttr(diagReqBytecode, bc))
	}
	var parseErr error
	err := req.ExecuteIter(unix.NETLINK_INET_DIAG, nl.SOCK_DIAG_BY_FAMILY, func(msg []byte) bool {
		buf = append(buf, DiagSocket{})
		if parseErr = ParseDiagMessage(msg, &buf[len(buf)-1]); parseErr != nil {
			buf = buf[:len(buf)-1]
			return false
		}
		return true
	})
	if parseErr != nil {
		return buf, parseErr
	}
	return buf, err
}

func familyName(fam uint8) string {
	if fam == unix.AF_INET6 {
		return "IPv6"
	}
	return "IPv4"
}
