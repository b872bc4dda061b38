package sockstat

import (
	"fmt"
	"strconv"
)

// ParseKernelRelease reads the major and minor version from a kernel release
// string as uname -r prints it ("6.1.0-18-amd64", "5.4.0-xyz",
// "3.10.0-1160.el7.x86_64"). Everything after the minor number is
// distribution-specific and ignored.
func ParseKernelRelease(release string) (major, minor int, err error) {
	rest := release
	major, rest, ok := leadingNumber(rest)
	if !ok || len(rest) == 0 || rest[0] != '.' {
		return 0, 0, fmt.Errorf("parse kernel release %q: want MAJOR.MINOR", release)
	}
	minor, rest, ok = leadingNumber(rest[1:])
	if !ok || (len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9') {
		return 0, 0, fmt.Errorf("parse kernel release %q: want MAJOR.MINOR", release)
	}
	return major, minor, nil
}

// leadingNumber splits the decimal number at the start of s from the rest.
func leadingNumber(s string) (n int, rest string, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, s, false
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil { // too many digits
		return 0, s, false
	}
	return n, s[i:], true
}

// FieldsForKernel returns the Sample fields that a mainline Linux kernel of
// this version provides. The TCP_INFO structure only ever grows at its end, so
// each group has one first release:
//
//	notsent_bytes                          4.6
//	busy_time, rwnd_limited, sndbuf_limited 4.10
//	snd_wnd (PeerWindow)                   5.4
//	rcv_wnd (OwnWindow)                    6.2
//
// The queue ioctls predate the oldest kernel Go runs on (3.2), except
// SIOCOUTQNSD, which came in early 3.x: it is assumed here, and Reader.Read
// drops it from Sample.Has if the kernel rejects it.
func FieldsForKernel(major, minor int) Fields {
	atLeast := func(wantMajor, wantMinor int) bool {
		return major > wantMajor || (major == wantMajor && minor >= wantMinor)
	}
	f := FieldBasic | FieldSendQueue | FieldSendQueueNotSent | FieldRecvQueue
	if atLeast(4, 6) {
		f |= FieldNotSentBytes
	}
	if atLeast(4, 10) {
		f |= FieldLimited
	}
	if atLeast(5, 4) {
		f |= FieldPeerWindow
	}
	if atLeast(6, 2) {
		f |= FieldOwnWindow
	}
	return f
}
