package verdict

import "time"

// Timeline is what the client saw on one writing connection, in the terms
// the verdict needs. Times are offsets from the run's start.
type Timeline struct {
	// Written and Acked are the connection's totals at the end.
	Written, Acked int64
	// Acks is how many acks moved the count; AckInterval the typical time
	// between two of them while bytes were unacknowledged (0: too few seen).
	Acks        int
	AckInterval time.Duration
	// Stalls are the times ack progress stopped for long while bytes were
	// unacknowledged, in order (at most maxStalls; StallsDropped more).
	Stalls        []Stall
	StallsDropped int
	// Blocks are the write calls blocked for at least the stall threshold,
	// in order (at most maxBlocks; BlocksDropped more).
	Blocks        []Block
	BlocksDropped int
	// Kernel: this connection's socket statistics could be read;
	// PeerWindowKnown: they include the next hop's window (tcpi_snd_wnd,
	// Linux 6.2 and later), so a stall's PeerWindowZeroAt of -1 means the
	// window stayed open, not unknown.
	Kernel, PeerWindowKnown bool
	// Stream: the connection is one stream of a multiplexed one (HTTP/2,
	// gRPC), held by its stream window above TCP's: its socket's peer
	// window stays open while the stream is held.
	Stream bool
	// Blocked is the time the connection's write calls took in all;
	// BlockedInStalls the part of it inside its stalls (waiting for a
	// stopped server). The rest waited on a path that kept flowing: the
	// path's throughput, not backpressure from a stop.
	Blocked, BlockedInStalls time.Duration
	// Path is the relays the server echoed in its first ack (PathKnown:
	// it did; an older server, or no ack, leaves the path unknown).
	Path      []string
	PathKnown bool
	// SeenFrom is the address ("ip:port") the server said, in its first
	// ack, it sees this connection from ("": not said, an older server);
	// LocalAddr is this client's own end of the connection ("": not
	// known). They differ when a hop in between rewrote the address.
	SeenFrom, LocalAddr string
}

// Stall is one period without ack progress while bytes were unacknowledged:
// as the client sees it, the server had stopped reading.
type Stall struct {
	// Since is when the server stopped, as well as the client can tell:
	// between the ack before the last one that moved (LastAckAt) and that
	// one, placed by the rate the server read at (placeStop in stop.go);
	// or, when every byte had been acknowledged, when the next one was
	// written. StopWithin is how precisely (the gap between those two
	// acks; 0: not known, the ack interval then).
	Since      time.Duration
	StopWithin time.Duration
	// LastAckAt is when the last ack that moved arrived (-1: the stall
	// began with a write into an empty pipe).
	LastAckAt time.Duration
	// Until is when ack progress came back (Resumed) or the last time the
	// client looked (the end of the run).
	Until   time.Duration
	Resumed bool
	// AckedBytes is what the server had read when it stopped: exact, the
	// last ack's count. WrittenAtSince is what the client had written by
	// Since (interpolated between the two acks around it, and at least
	// AckedBytes).
	AckedBytes, WrittenAtSince int64
	// PeakInPipe is the most bytes written and not acknowledged during the
	// stall: what the path held at least.
	PeakInPipe int64
	// NoAckYet: no ack had arrived at all before this stall.
	NoAckYet bool
	// PeerWindowZeroAt is when the kernel first saw the next hop advertise
	// a zero window during the stall (-1: not seen, or not sampled).
	PeerWindowZeroAt time.Duration
}

// Block is one write call blocked for at least the stall threshold.
type Block struct {
	// Began is when the write call started; Ended when it returned (for an
	// Ongoing block, when it was last seen).
	Began, Ended time.Duration
	Ongoing      bool
	// WrittenBefore is the bytes accepted before this call.
	WrittenBefore int64
	// Size is the bytes the call was to write: how precisely the bytes at
	// the moment of blocking are known.
	Size int64
	// SendQueue is the largest send queue (SIOCOUTQ) the kernel showed
	// while the call was blocked (-1: not read).
	SendQueue int64
}

// Params are the run's settings Compute needs.
type Params struct {
	// End is the run's length, from its start.
	End time.Duration
	// StallThreshold is the blocked time from which a write counts as
	// blocked.
	StallThreshold time.Duration
	// KernelReason, when not empty, says why the kernel's socket
	// statistics were not read (sampling off, unsupported system).
	KernelReason string
	// StreamConnections is, when the timelines are streams (HTTP/2, gRPC
	// with --streams), how many connections carry them; 0 when each
	// timeline is a connection of its own. It only changes the words.
	StreamConnections int
}

// units names v's timelines in words: connections, or streams on
// connections.
func (p Params) units(v Verdict) Units {
	return Units{Runs: v.Connections, Connections: p.StreamConnections}
}

// Outcomes of a verdict.
const (
	// OutcomeBlocked: the server stopped reading and the client's writes
	// blocked because of it.
	OutcomeBlocked = "blocked"
	// OutcomeAbsorbed: the server stopped reading, the client never
	// blocked: the path absorbed everything it wrote meanwhile.
	OutcomeAbsorbed = "absorbed"
	// OutcomeNotStalled: the server never stopped reading for long.
	OutcomeNotStalled = "not_stalled"
	// OutcomeUnknown: nothing to judge (no payload written).
	OutcomeUnknown = "unknown"
)

// Confidence levels.
const (
	High   = "high"
	Medium = "medium"
	Low    = "low"
)

// Verdict is the client's account of whether the server's slowness reached
// it, and how much the path absorbed on the way. Its JSON form is the
// `verdict` object of bp-client's --output json report. Byte and time
// figures are per connection (with several connections, the median over
// the connections whose server stopped); times are seconds from the run's
// start, as the client's clock saw them.
type Verdict struct {
	Outcome    string   `json:"outcome"`
	Summary    string   `json:"summary"`
	Confidence string   `json:"confidence"`
	Reasons    []string `json:"reasons"`

	Connections        int `json:"connections"`
	StalledConnections int `json:"stalled_connections"`
	BlockedConnections int `json:"blocked_connections"`
	// AckIntervalSeconds is how often acks moved while the server read:
	// the resolution of "when the server stopped".
	AckIntervalSeconds float64 `json:"ack_interval_seconds"`
	Stalls             int     `json:"stalls"`

	ServerStoppedAtSeconds *float64 `json:"server_stopped_at_seconds,omitempty"`
	ServerResumedAtSeconds *float64 `json:"server_resumed_at_seconds,omitempty"`
	WritesBlockedAtSeconds *float64 `json:"writes_blocked_at_seconds,omitempty"`
	// BlockDelaySeconds is from the server stopping to the client's writes
	// blocking (0 when they were blocked already).
	BlockDelaySeconds *float64 `json:"block_delay_seconds,omitempty"`
	// AcceptedAfterStopBytes: bytes the client's writes accepted after it
	// saw the server stop, until they blocked (or the stall ended).
	AcceptedAfterStopBytes *int64 `json:"accepted_after_stop_bytes,omitempty"`
	// AbsorbedBytes: bytes written and not read by the server when the
	// writes blocked; when they never blocked, the most seen during the
	// stall (then AbsorbedIsLowerBound: the path could have held more).
	AbsorbedBytes        *int64 `json:"absorbed_bytes,omitempty"`
	AbsorbedIsLowerBound bool   `json:"absorbed_is_lower_bound,omitempty"`
	// TotalAbsorbedBytes is AbsorbedBytes summed over connections.
	TotalAbsorbedBytes *int64 `json:"total_absorbed_bytes,omitempty"`
	// OwnSendQueueBytes: of AbsorbedBytes, what sat in this client's own
	// socket (the kernel's send queue while the write was blocked);
	// BeyondClientBytes the rest, further along the path.
	OwnSendQueueBytes *int64 `json:"own_send_queue_bytes,omitempty"`
	BeyondClientBytes *int64 `json:"beyond_client_bytes,omitempty"`
	// PeerWindowClosedAtSeconds: when the next hop (the server on a direct
	// path) first advertised a zero window during the stall.
	PeerWindowClosedAtSeconds *float64 `json:"peer_window_closed_at_seconds,omitempty"`

	// ServerReadAtStopBytes: what the server had read when it stopped,
	// exactly (its last ack's count); ServerStoppedWithinSeconds: how
	// precisely the stop is known in time (the gap between the acks
	// around it).
	ServerReadAtStopBytes      *int64   `json:"server_read_at_stop_bytes,omitempty"`
	ServerStoppedWithinSeconds *float64 `json:"server_stopped_within_seconds,omitempty"`

	// WaitedFlowingSeconds: time the write calls waited while acks kept
	// moving (throughput-bound: the path, not a stop, set the pace);
	// WaitedStalledSeconds: time they were blocked during stalls (no
	// ack progress), in any stall, whether or not the verdict names it
	// as the server's stop, and whether the observer recorded the stall
	// before the write returned or after. Both in all, summed over the
	// connections; they add up to the time in write calls (the report's
	// blocked_seconds). A call shorter than the stall threshold is not a
	// block: its wait counts as flowing, even inside a stall.
	WaitedFlowingSeconds float64 `json:"waited_flowing_seconds"`
	WaitedStalledSeconds float64 `json:"waited_stalled_seconds"`

	// Via is the path as the server echoed it in its first ack: the
	// bp-relays between this client and the server, in order ([] for
	// none). Absent when no server said (an older server, no ack, or
	// connections that disagree). A third-party proxy (HAProxy, nginx)
	// never names itself, so [] is "no bp-relay", not "no hop".
	Via *[]string `json:"via,omitempty"`
	// SeenFrom is the address the server sees the (first) connection
	// from, as its first ack said, and LocalAddr this client's own end of
	// it. AddressRewritten is true when on every connection the two
	// differ: a hop in between that did not necessarily name itself (a
	// proxy or load balancer that ended TCP, or a NAT) rewrote it; false
	// when they are equal on every one (no hop that ended TCP, short of
	// a transparent proxy that keeps the client's address); absent when
	// not known (an older server, addresses that cannot be compared, or
	// connections that disagree).
	SeenFrom         string `json:"seen_from,omitempty"`
	LocalAddr        string `json:"local_addr,omitempty"`
	AddressRewritten *bool  `json:"address_rewritten,omitempty"`
	// fleet marks a fleet's verdict (Fleet), whose addresses are its
	// first instance's, so that the words speak of the clients, not of
	// "this client".
	fleet bool
}

// PeerWords names the client's peer, the next hop whose kernel's window the
// client sees, as far as the client knows it: a bp-relay when the server
// echoed one; else a hop that did not name itself when the server sees
// the connection from another address than this client's own, the server
// when from its own; without the addresses, the server only when it
// echoed an empty path, and even then a proxy that does not name itself
// could sit in between.
func (v Verdict) PeerWords() string {
	relayed := v.Via != nil && len(*v.Via) > 0
	switch {
	case !relayed && v.AddressRewritten != nil && *v.AddressRewritten:
		return "the peer (a hop that did not name itself: " + v.seenWords() + ")"
	case !relayed && v.AddressRewritten != nil:
		return "the peer (the server: it sees " + v.ownWords() + ")"
	case v.Via == nil:
		return "the peer (the next hop; the server did not say which)"
	case len(*v.Via) == 0:
		// The caveat (a proxy that does not name itself) is in the reasons.
		return "the peer (the server: no bp-relay named itself)"
	}
	return "the peer (bp-relay " + (*v.Via)[0] + ", the first hop)"
}

// Compute judges a run from its connections' timelines. It is a pure
// function: same timelines, same verdict. It reads in four steps: pick
// each connection's stall (pick.go), aggregate the stalled connections
// (aggregate.go), classify the run (classify.go), and describe it in
// words (describe.go).
func Compute(tls []Timeline, p Params) Verdict {
	v, _ := compute(tls, p, nil)
	return v
}

// compute is Compute with the stalled connections' views appended to
// views, which it returns for the next judgment (Observer.Verdict's
// arena): at 19,000 stalled connections they were 8 MB a judgment.
func compute(tls []Timeline, p Params, views []connView) (Verdict, []connView) {
	v := Verdict{Connections: len(tls), Reasons: []string{}}
	n := &notes{}
	run := tally(tls)
	v.AckIntervalSeconds = run.ackInterval.Seconds()
	v.Stalls = run.stalls
	runWide(&v, tls)
	addrs := addresses(&v, tls)
	if run.written == 0 {
		v.Outcome = OutcomeUnknown
		v.Summary = describeNothing(n)
		return n.finish(v), views
	}
	resolution := resolutionOf(run.ackInterval)
	n.resolution(run.ackInterval, resolution)

	views, blocksWithoutStall := pickAll(tls, resolution, views[:0])
	v.StalledConnections = len(views)
	if len(views) == 0 {
		v.Outcome = OutcomeNotStalled
		v.Summary = describeNotStalled(n, p, resolution, blocksWithoutStall, run.acks)
		n.waits(v, p)
		n.path(v, addrs)
		return n.finish(v), views
	}
	a := aggregate(views)
	a.figures(&v)
	classify(&v, a)
	v.Summary = describeStalled(n, v, a, p, resolution)
	n.waits(v, p)
	n.path(v, addrs)
	return n.finish(v), views
}
