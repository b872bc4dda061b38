package sockstat

import (
	"errors"
	"runtime"
	"strings"
	"time"
)

// ErrUnsupported is returned on systems where the kernel's socket statistics
// cannot be read (every system but Linux). Callers treat it as "nothing to
// report", not as a failure.
var ErrUnsupported = errors.New("sockstat: socket statistics are not supported on " + runtime.GOOS)

// Sample is one reading of one TCP socket. Only the fields named in Has are
// real: a field the kernel does not provide stays zero, and a zero there means
// "unknown", not "empty". A Sample is plain data, so callers keep one per
// connection and let Reader.Read overwrite it.
type Sample struct {
	// From getsockopt(TCP_INFO).

	// PeerWindow is tcpi_snd_wnd: the receive window the peer last advertised,
	// in bytes, after scaling. Zero means the peer's reader has stopped and we
	// may not send (FieldPeerWindow, Linux >= 5.4).
	PeerWindow uint32
	// OwnWindow is tcpi_rcv_wnd: the receive window we advertise to the peer,
	// in bytes. It shrinks as our unread receive queue grows
	// (FieldOwnWindow, Linux >= 6.2).
	OwnWindow uint32
	// NotSentBytes is tcpi_notsent_bytes: bytes written by the application that
	// the kernel has not sent yet (FieldNotSentBytes, Linux >= 4.6).
	NotSentBytes uint32
	// Unacked is tcpi_unacked: segments sent and not yet acknowledged
	// (FieldBasic).
	Unacked uint32
	// SndCwnd is tcpi_snd_cwnd: the congestion window, in segments
	// (FieldBasic). Together with PeerWindow it tells congestion control
	// apart from flow control.
	SndCwnd uint32
	// RTT is tcpi_rtt: the smoothed round-trip time (FieldBasic).
	RTT time.Duration
	// Probes is tcpi_probes: zero-window (or keepalive) probes sent without an
	// answer. It grows while the peer's window stays closed (FieldBasic).
	Probes uint8
	// BusyTime is tcpi_busy_time: time, since the connection started, during
	// which there was data to send (FieldLimited, Linux >= 4.10).
	BusyTime time.Duration
	// RwndLimited is tcpi_rwnd_limited: of BusyTime, the time the sender was
	// stopped by the peer's receive window, cumulative. It is the direct
	// measure of flow-control backpressure from the peer (FieldLimited).
	RwndLimited time.Duration
	// SndbufLimited is tcpi_sndbuf_limited: of BusyTime, the time the sender
	// was stopped by its own full send buffer, cumulative (FieldLimited).
	SndbufLimited time.Duration

	// From the queue ioctls.

	// SendQueue is SIOCOUTQ: bytes in the send queue not yet acknowledged by
	// the peer, sent or not (FieldSendQueue).
	SendQueue int
	// SendQueueNotSent is SIOCOUTQNSD: bytes in the send queue not yet sent
	// (FieldSendQueueNotSent).
	SendQueueNotSent int
	// RecvQueue is SIOCINQ: bytes received and not yet read by the
	// application (FieldRecvQueue).
	RecvQueue int

	// Has says which of the fields above this kernel really provided.
	Has Fields
}

// Fields is a set of Sample fields, as a bitmask. It exists because kernels
// add TCP_INFO fields over the years: a metric built from a field the kernel
// lacks would show a false zero, so callers check Has first.
type Fields uint32

// The field groups of a Sample. A group's fields arrived in the same kernel
// release, so they are present or absent together.
const (
	// FieldBasic covers Unacked, SndCwnd, RTT and Probes, which every Linux
	// TCP_INFO provides.
	FieldBasic Fields = 1 << iota
	// FieldNotSentBytes covers NotSentBytes (Linux >= 4.6).
	FieldNotSentBytes
	// FieldLimited covers BusyTime, RwndLimited and SndbufLimited
	// (Linux >= 4.10).
	FieldLimited
	// FieldPeerWindow covers PeerWindow (Linux >= 5.4).
	FieldPeerWindow
	// FieldOwnWindow covers OwnWindow (Linux >= 6.2).
	FieldOwnWindow
	// FieldSendQueue covers SendQueue (SIOCOUTQ).
	FieldSendQueue
	// FieldSendQueueNotSent covers SendQueueNotSent (SIOCOUTQNSD).
	FieldSendQueueNotSent
	// FieldRecvQueue covers RecvQueue (SIOCINQ).
	FieldRecvQueue

	// AllFields is every field group this package knows.
	AllFields = FieldBasic | FieldNotSentBytes | FieldLimited | FieldPeerWindow |
		FieldOwnWindow | FieldSendQueue | FieldSendQueueNotSent | FieldRecvQueue
)

// fieldNames describes each group for String and MissingDescription, in
// bit order.
var fieldNames = []struct {
	field Fields
	name  string
}{
	{FieldBasic, "unacked/cwnd/rtt/probes"},
	{FieldNotSentBytes, "notsent_bytes (Linux >= 4.6)"},
	{FieldLimited, "busy/rwnd_limited/sndbuf_limited time (Linux >= 4.10)"},
	{FieldPeerWindow, "peer window snd_wnd (Linux >= 5.4)"},
	{FieldOwnWindow, "own window rcv_wnd (Linux >= 6.2)"},
	{FieldSendQueue, "send queue (SIOCOUTQ)"},
	{FieldSendQueueNotSent, "unsent send queue (SIOCOUTQNSD)"},
	{FieldRecvQueue, "receive queue (SIOCINQ)"},
}

// String lists the field groups in f, for logs and test failures.
func (f Fields) String() string {
	if f == 0 {
		return "none"
	}
	var names []string
	for _, n := range fieldNames {
		if f&n.field != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ", ")
}

// MissingDescription says, in words, which fields the running kernel does not
// provide, or "" if it provides them all. The binaries log it once at start,
// so that a user looking at an empty dashboard panel knows why.
func MissingDescription() string {
	if !Supported() {
		return "TCP socket statistics are not available on " + runtime.GOOS
	}
	missing := AllFields &^ KernelFields()
	if missing == 0 {
		return ""
	}
	return "this kernel does not provide: " + missing.String()
}
