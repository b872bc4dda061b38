//go:build linux

package sockstat

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The sock_diag attributes this package asks for and reads
// (linux/inet_diag.h).
const (
	diagAttrInfo      = 2 // INET_DIAG_INFO: struct tcp_info
	diagAttrSkMemInfo = 7 // INET_DIAG_SKMEMINFO: __u32[SK_MEMINFO_VARS]
)

// sizeofDiagMsg is the size of struct inet_diag_msg, the header of each
// answer: family, state, timer, retransmits; the socket id (48 bytes);
// expires, rqueue, wqueue, uid, inode.
const sizeofDiagMsg = 72

// The SK_MEMINFO_* indexes of INET_DIAG_SKMEMINFO (linux/sock_diag.h).
const (
	memRmemAlloc = iota
	memRcvbuf
	memWmemAlloc
	memSndbuf
	memFwdAlloc
	memWmemQueued
	memOptmem
	memBacklog
	memDrops
	memVars
)

// ParseDiagMessage parses one sock_diag answer (struct inet_diag_msg and
// its attributes, the netlink header already removed) into s. A message
// shorter than its header, or with broken attributes, is an error; an
// attribute the kernel left out leaves its fields out of s.Sample.Has (or
// HasMem false), never zero. It is separate from the dump so that it can
// be tested on bytes.
func ParseDiagMessage(msg []byte, s *DiagSocket) error {
	if len(msg) < sizeofDiagMsg {
		return fmt.Errorf("sockstat: sock_diag message of %d bytes, shorter than its %d-byte header", len(msg), sizeofDiagMsg)
	}
	*s = DiagSocket{Family: msg[0], State: msg[1]}
	ne := binary.NativeEndian
	lport, rport := binary.BigEndian.Uint16(msg[4:6]), binary.BigEndian.Uint16(msg[6:8])
	var local, remote netip.Addr
	if s.Family == unix.AF_INET {
		local, remote = netip.AddrFrom4([4]byte(msg[8:12])), netip.AddrFrom4([4]byte(msg[24:28]))
	} else {
		local, remote = netip.AddrFrom16([16]byte(msg[8:24])), netip.AddrFrom16([16]byte(msg[24:40]))
	}
	s.Local, s.Remote = netip.AddrPortFrom(local, lport), netip.AddrPortFrom(remote, rport)
	s.Cookie = uint64(ne.Uint32(msg[44:48])) | uint64(ne.Uint32(msg[48:52]))<<32
	rqueue, wqueue := ne.Uint32(msg[56:60]), ne.Uint32(msg[60:64])
	s.INode = ne.Uint32(msg[68:72])

	attrs, err := nl.ParseRouteAttr(msg[sizeofDiagMsg:])
	if err != nil {
		return fmt.Errorf("sockstat: sock_diag attributes: %w", err)
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case diagAttrInfo:
			parseTCPInfo(a.Value, &s.Sample)
		case diagAttrSkMemInfo:
			s.Mem, s.HasMem = parseSkMemInfo(a.Value)
		}
	}
	// After TCP_INFO, which sets Has: the queues are the message's own.
	smp := &s.Sample
	smp.RecvQueue, smp.SendQueue = int(rqueue), int(wqueue)
	smp.Has |= FieldRecvQueue | FieldSendQueue
	if smp.Has&FieldNotSentBytes != 0 {
		smp.SendQueueNotSent, smp.Has = int(smp.NotSentBytes), smp.Has|FieldSendQueueNotSent
	}
	return nil
}

// parseTCPInfo fills s from INET_DIAG_INFO: the kernel's struct tcp_info,
// as long as the kernel's version of it, which says which fields are real.
func parseTCPInfo(b []byte, s *Sample) {
	var info unix.TCPInfo
	n := copy(unsafe.Slice((*byte)(unsafe.Pointer(&info)), unsafe.Sizeof(info)), b)
	fromTCPInfo(&info, uint32(n), s)
}

// parseSkMemInfo reads INET_DIAG_SKMEMINFO; ok is false when the kernel
// sent fewer values than this package reads.
func parseSkMemInfo(b []byte) (m DiagMem, ok bool) {
	if len(b) < memVars*4 {
		return m, false
	}
	v := func(i int) int { return int(binary.NativeEndian.Uint32(b[i*4:])) }
	return DiagMem{
		RecvAlloc: v(memRmemAlloc), RecvBuffer: v(memRcvbuf),
		SendAlloc: v(memWmemAlloc), SendQueued: v(memWmemQueued), SendBuffer: v(memSndbuf),
		Drops: v(memDrops),
	}, true
}
