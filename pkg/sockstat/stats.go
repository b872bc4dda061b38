package sockstat

import "time"

// Gauges are one sampling pass's view of one protocol's connections.
type Gauges struct {
	// Sampled is how many connections the pass read.
	Sampled int
	// Of writing connections: the send queue and its unsent part, summed;
	// the zero-window probes outstanding, summed; the largest send queue
	// of one connection.
	SendQueue, Unsent, Probes int
	LargestSendQueue          int
	// PeerWindowMin is the smallest peer window of writing connections,
	// valid when HasPeerWindowMin (a minimum over no connection is none).
	PeerWindowMin    uint32
	HasPeerWindowMin bool
	// PeerWindowZeroConns is how many writing connections see a zero
	// peer window.
	PeerWindowZeroConns int
	// Of reading connections: the receive queue, summed; the smallest own
	// window (valid when HasOwnWindowMin); how many advertise zero.
	RecvQueue          int
	OwnWindowMin       uint32
	HasOwnWindowMin    bool
	OwnWindowZeroConns int
	// FirstPeerWindowClose is the pass's earliest closing of a writing
	// connection's peer window (zero: none closed in it).
	FirstPeerWindowClose time.Time
	// HeldPeerWindowClose is when the earliest closing the pass saw hold
	// (shut flow.WindowHeldMin or longer, by now or until it reopened)
	// began; zero: none.
	HeldPeerWindowClose time.Time
}

// Counters accumulate time and events over connections: the seconds add
// per-connection deltas of the kernel's own cumulative counters (and, for
// zero windows, the time between samples), so nothing is lost between
// passes or when a connection closes.
type Counters struct {
	PeerWindowZero, OwnWindowZero     time.Duration
	RwndLimited, SndbufLimited, Busy  time.Duration
	PeerWindowCloses, OwnWindowCloses int
}

func (c *Counters) add(d Counters) {
	c.PeerWindowZero += d.PeerWindowZero
	c.OwnWindowZero += d.OwnWindowZero
	c.RwndLimited += d.RwndLimited
	c.SndbufLimited += d.SndbufLimited
	c.Busy += d.Busy
	c.PeerWindowCloses += d.PeerWindowCloses
	c.OwnWindowCloses += d.OwnWindowCloses
}

// sub is c minus base, for counters since a moment.
func (c Counters) sub(base Counters) Counters {
	return Counters{
		PeerWindowZero: c.PeerWindowZero - base.PeerWindowZero, OwnWindowZero: c.OwnWindowZero - base.OwnWindowZero,
		RwndLimited: c.RwndLimited - base.RwndLimited, SndbufLimited: c.SndbufLimited - base.SndbufLimited,
		Busy: c.Busy - base.Busy, PeerWindowCloses: c.PeerWindowCloses - base.PeerWindowCloses,
		OwnWindowCloses: c.OwnWindowCloses - base.OwnWindowCloses,
	}
}

// ProtocolStats is the sampler's account of one protocol's connections:
// the last pass's gauges and the counters since start.
type ProtocolStats struct {
	Gauges
	Counters
	// PeakSendQueue is the largest send queue of one writing connection
	// since start or the last ResetPeak.
	PeakSendQueue int
	// FirstPeerWindowClose is when a writing connection's peer window
	// first closed since start or the last ResetPeak; zero: none did.
	// HeldPeerWindowClose is when the first closing that held
	// (Gauges.HeldPeerWindowClose) began; zero: none did.
	FirstPeerWindowClose, HeldPeerWindowClose time.Time
}

// Totals is the sampler's account summed over protocols, for the client's
// report and live display. Has says which fields the kernel provides: a
// total whose field is missing is unknown, not zero.
type Totals struct {
	Has Fields
	// Since start (see Since): PeerWindowZero, RwndLimited, SndbufLimited,
	// Busy and PeerWindowCloses summed over writing connections,
	// OwnWindowZero and OwnWindowCloses over reading ones.
	Counters
	// PeakConnSendQueue is the largest send queue of any one writing
	// connection (since ResetPeak).
	PeakConnSendQueue int
	// FirstPeerWindowClose is when a peer window first closed since
	// ResetPeak (zero: none did), as the passes saw it: to within one
	// sample interval. HeldPeerWindowClose is when the first closing
	// that held (shut flow.WindowHeldMin or longer) began: where writes
	// stopped, rather than an instant's closing; zero: none did.
	FirstPeerWindowClose, HeldPeerWindowClose time.Time
	// The last pass. Sockets is how many it read: each once, however
	// many streams of a multiplexed connection share it.
	SendQueue, Unsent, RecvQueue int
	PeerWindowZeroConnections    int
	Sockets                      int
}

// Since returns t with its counters counted from base (an earlier Totals
// of the same sampler) rather than from the sampler's start: the account
// of one run of several in a process. The gauges and the peak are t's.
func (t Totals) Since(base Totals) Totals {
	t.Counters = t.Counters.sub(base.Counters)
	return t
}

// sumTotals adds up the per-protocol stats.
func sumTotals(stats []ProtocolStats, has Fields) Totals {
	t := Totals{Has: has}
	for _, st := range stats {
		t.Counters.add(st.Counters)
		t.PeakConnSendQueue = max(t.PeakConnSendQueue, st.PeakSendQueue)
		t.FirstPeerWindowClose = earliest(t.FirstPeerWindowClose, st.FirstPeerWindowClose)
		t.HeldPeerWindowClose = earliest(t.HeldPeerWindowClose, st.HeldPeerWindowClose)
		t.SendQueue += st.SendQueue
		t.Unsent += st.Unsent
		t.RecvQueue += st.RecvQueue
		t.PeerWindowZeroConnections += st.PeerWindowZeroConns
		t.Sockets += st.Sampled
	}
	return t
}
