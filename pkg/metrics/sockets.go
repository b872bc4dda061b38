package metrics

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// DefaultSampleInterval is how often the kernel's view of every connection is
// sampled unless configured otherwise: often enough to see a window close
// and reopen within a pause, cheap enough for thousands of connections.
const DefaultSampleInterval = 100 * time.Millisecond

// WindowSide says whose receive window a WindowEvent is about.
type WindowSide int

const (
	// OwnWindow is the window this side advertises as a reader (tcpi_rcv_wnd).
	OwnWindow WindowSide = iota
	// PeerWindow is the window the peer advertised to this side as a writer
	// (tcpi_snd_wnd).
	PeerWindow
)

func (w WindowSide) String() string {
	if w == PeerWindow {
		return "peer"
	}
	return "own"
}

// WindowEvent is a receive window closing (reaching zero) or reopening, as
// seen by two consecutive samples of one connection.
type WindowEvent struct {
	// Conn is the connection's socket (flow.ConnInfo.Conn): it tells the
	// receiver which connection the event belongs to.
	Conn     net.Conn
	Protocol flow.Protocol
	Window   WindowSide
	// Closed is true when the window reached zero, false when it reopened.
	Closed bool
	At     time.Time
}

// SocketSampler reads the kernel's statistics (pkg/sockstat) of every open
// connection at a fixed interval, from one goroutine for the whole process,
// and aggregates them per protocol into metrics with no per-connection
// labels. It is a flow.Observer (connections register in Open and leave in
// Closing/Closed) and a prometheus.Collector (Collect reports the last pass).
//
//	Open -> register Reader --+
//	                          v
//	Run: every interval, one pass: Reader.Read each -> per-protocol sums,
//	     minimums and counters -> Collect / Totals / OnWindow
//	                          ^
//	Closing: last sample, unregister
//
// Gauges describe the last pass; the seconds counters add per-connection
// deltas of the kernel's own cumulative counters (and, for zero windows,
// the time between samples), so nothing is lost between passes or when a
// connection closes. Fields the running kernel lacks are not exported.
type SocketSampler struct {
	interval time.Duration
	onWindow func(WindowEvent)

	mu      sync.Mutex
	conns   []*socketConn // registered connections
	scratch []*socketConn // the pass's copy of conns, reused between passes

	statsMu sync.Mutex
	stats   [numProtocols]socketStats
	fields  sockstat.Fields // kernel fields, plus any a sample turned up

	descs []socketMetric
}

var (
	_ flow.Observer        = (*SocketSampler)(nil)
	_ prometheus.Collector = (*SocketSampler)(nil)
)

// SamplerOptions configure a SocketSampler.
type SamplerOptions struct {
	// Interval between passes; 0 (or a system without socket statistics)
	// disables sampling: Open then registers nothing and no metric is
	// exported.
	Interval time.Duration
	// OnWindow, if set, is called from the sampling goroutine when a
	// connection's window closes or reopens (own window on reading
	// connections, peer window on writing ones). It must return quickly.
	OnWindow func(WindowEvent)
}

// NewSocketSampler registers the socket metrics on reg and returns the
// sampler; call Run to start sampling.
func NewSocketSampler(reg prometheus.Registerer, opts SamplerOptions) (*SocketSampler, error) {
	s := &SocketSampler{interval: opts.Interval, onWindow: opts.OnWindow, descs: socketMetrics()}
	if !sockstat.Supported() {
		s.interval = 0
	}
	if s.interval > 0 {
		s.fields = sockstat.KernelFields()
	}
	if err := reg.Register(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Enabled reports whether the sampler samples at all.
func (s *SocketSampler) Enabled() bool { return s.interval > 0 }

// Interval is the time between passes (0: disabled).
func (s *SocketSampler) Interval() time.Duration { return s.interval }

// Run samples every interval until ctx ends. It returns at once when
// sampling is off. A pass over many connections takes time (about 4 µs a
// socket: 40 ms at 10,000), so the next pass starts no sooner than ten
// times the last pass's duration after it: sampling never takes more than
// a tenth of a core, and the counters stay exact because each sample adds
// the time since the previous one.
func (s *SocketSampler) Run(ctx context.Context) error {
	if s.interval <= 0 {
		return nil
	}
	t := time.NewTimer(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			s.Sample(now)
			took := time.Since(now)
			t.Reset(max(s.interval-took, 9*took))
		}
	}
}

// protocolIndex maps a protocol to its slot in per-protocol arrays.
func protocolIndex(p flow.Protocol) int {
	for i, q := range Protocols {
		if q == p && i < numProtocols {
			return i
		}
	}
	return -1
}

const numProtocols = 2

// socketStats is one protocol's aggregate: gauges from the last pass,
// counters since start.
type socketStats struct {
	gauges    socketGauges
	counters  socketCounters
	peakQueue int // largest send queue of one writing connection, ever
}

// socketGauges hold one pass's view of one protocol.
type socketGauges struct {
	sampled                        int
	sendQueue, unsent, recvQueue   int
	probes                         int
	peerWindowMin, ownWindowMin    uint32
	peerMinValid, ownMinValid      bool
	peerZeroConns, ownZeroConns    int
	peakQueue                      int // largest send queue of one connection in this pass
	writersSampled, readersSampled int
}

// socketCounters accumulate time, per protocol, summed over connections.
type socketCounters struct {
	peerZero, ownZero                 time.Duration
	rwndLimited, sndbufLimited        time.Duration
	busy                              time.Duration
	peerWindowCloses, ownWindowCloses int
}

func (c *socketCounters) add(d socketCounters) {
	c.peerZero += d.peerZero
	c.ownZero += d.ownZero
	c.rwndLimited += d.rwndLimited
	c.sndbufLimited += d.sndbufLimited
	c.busy += d.busy
	c.peerWindowCloses += d.peerWindowCloses
	c.ownWindowCloses += d.ownWindowCloses
}

// socketConn is one registered connection: its Reader, its reused Sample
// and what the previous sample said, for deltas and transitions.
type socketConn struct {
	flow.Nop // the flow events other than Closing and Closed are of no use here
	s        *SocketSampler
	info     flow.ConnInfo
	proto    int
	reader   *sockstat.Reader
	index    int // position in s.conns, under s.mu; -1 once unregistered

	mu                             sync.Mutex // guards the fields below
	done                           bool
	sample                         sockstat.Sample
	lastAt                         time.Time
	lastRwnd, lastSndbuf, lastBusy time.Duration
	peerZero, ownZero              bool
}

// Open implements flow.Observer: it registers the connection for sampling.
// A connection whose socket cannot be read (no socket, not TCP) is skipped.
func (s *SocketSampler) Open(info flow.ConnInfo) flow.ConnObserver {
	proto := protocolIndex(info.Protocol)
	if s.interval <= 0 || info.Conn == nil || proto < 0 {
		return flow.Nop{}
	}
	r, err := sockstat.NewReader(info.Conn)
	if err != nil {
		return flow.Nop{}
	}
	c := &socketConn{s: s, info: info, proto: proto, reader: r, lastAt: time.Now()}
	s.mu.Lock()
	c.index = len(s.conns)
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	return c
}

// Closing takes the connection's last sample, while its socket is still
// open, and unregisters it (flow.ClosingObserver).
func (c *socketConn) Closing() {
	now := time.Now()
	var g socketGauges
	var d socketCounters
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return
	}
	c.sampleLocked(now, &g, &d)
	c.done = true
	c.mu.Unlock()
	c.s.unregister(c)
	c.s.publishFinal(c.proto, g, d)
}

// Closed unregisters the connection if Closing was not called (the socket
// is closed by then, so there is nothing left to read).
func (c *socketConn) Closed(error) {
	c.mu.Lock()
	already := c.done
	c.done = true
	c.mu.Unlock()
	if !already {
		c.s.unregister(c)
	}
}

func (s *SocketSampler) unregister(c *socketConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := c.index
	if i < 0 {
		return
	}
	last := len(s.conns) - 1
	s.conns[i] = s.conns[last]
	s.conns[i].index = i
	s.conns[last] = nil
	s.conns = s.conns[:last]
	c.index = -1
}

// Sample runs one pass over every registered connection, as Run does every
// interval; now is the time of the pass. It does not allocate once its
// scratch space has grown to the number of connections.
func (s *SocketSampler) Sample(now time.Time) {
	s.mu.Lock()
	s.scratch = append(s.scratch[:0], s.conns...)
	s.mu.Unlock()

	var gauges [numProtocols]socketGauges
	var deltas [numProtocols]socketCounters
	var seen sockstat.Fields
	for i, c := range s.scratch {
		c.mu.Lock()
		if !c.done {
			c.sampleLocked(now, &gauges[c.proto], &deltas[c.proto])
			seen |= c.sample.Has
		}
		c.mu.Unlock()
		s.scratch[i] = nil // do not keep closed connections alive
	}

	s.statsMu.Lock()
	s.fields |= seen
	for p := range s.stats {
		st := &s.stats[p]
		st.gauges = gauges[p]
		st.counters.add(deltas[p])
		st.peakQueue = max(st.peakQueue, gauges[p].peakQueue)
	}
	s.statsMu.Unlock()
}

// publishFinal adds a closing connection's last deltas; its gauges leave
// with it at the next pass.
func (s *SocketSampler) publishFinal(proto int, g socketGauges, d socketCounters) {
	s.statsMu.Lock()
	st := &s.stats[proto]
	st.counters.add(d)
	st.peakQueue = max(st.peakQueue, g.peakQueue)
	s.statsMu.Unlock()
}

// sampleLocked reads the socket once and adds what it saw to g and d.
// c.mu must be held.
func (c *socketConn) sampleLocked(now time.Time, g *socketGauges, d *socketCounters) {
	if err := c.reader.Read(&c.sample); err != nil {
		return // closed under us: the connection is about to unregister
	}
	smp := &c.sample
	dt := max(now.Sub(c.lastAt), 0)
	c.lastAt = now
	g.sampled++
	if c.info.Writes {
		g.writersSampled++
		if smp.Has&sockstat.FieldSendQueue != 0 {
			g.sendQueue += smp.SendQueue
			g.peakQueue = max(g.peakQueue, smp.SendQueue)
		}
		if smp.Has&sockstat.FieldSendQueueNotSent != 0 {
			g.unsent += smp.SendQueueNotSent
		}
		if smp.Has&sockstat.FieldBasic != 0 {
			g.probes += int(smp.Probes)
		}
		if smp.Has&sockstat.FieldPeerWindow != 0 {
			if !g.peerMinValid || smp.PeerWindow < g.peerWindowMin {
				g.peerWindowMin, g.peerMinValid = smp.PeerWindow, true
			}
			zero := smp.PeerWindow == 0
			if zero {
				g.peerZeroConns++
				d.peerZero += dt
			}
			if zero != c.peerZero {
				c.peerZero = zero
				if zero {
					d.peerWindowCloses++
				}
				c.s.notify(c, PeerWindow, zero, now)
			}
		}
		if smp.Has&sockstat.FieldLimited != 0 {
			// The kernel's counters are cumulative since the connection
			// started: add what grew since the last sample.
			d.rwndLimited += max(smp.RwndLimited-c.lastRwnd, 0)
			d.sndbufLimited += max(smp.SndbufLimited-c.lastSndbuf, 0)
			d.busy += max(smp.BusyTime-c.lastBusy, 0)
			c.lastRwnd, c.lastSndbuf, c.lastBusy = smp.RwndLimited, smp.SndbufLimited, smp.BusyTime
		}
	}
	if c.info.Reads {
		g.readersSampled++
		if smp.Has&sockstat.FieldRecvQueue != 0 {
			g.recvQueue += smp.RecvQueue
		}
		if smp.Has&sockstat.FieldOwnWindow != 0 {
			if !g.ownMinValid || smp.OwnWindow < g.ownWindowMin {
				g.ownWindowMin, g.ownMinValid = smp.OwnWindow, true
			}
			zero := smp.OwnWindow == 0
			if zero {
				g.ownZeroConns++
				d.ownZero += dt
			}
			if zero != c.ownZero {
				c.ownZero = zero
				if zero {
					d.ownWindowCloses++
				}
				c.s.notify(c, OwnWindow, zero, now)
			}
		}
	}
}

func (s *SocketSampler) notify(c *socketConn, w WindowSide, closed bool, now time.Time) {
	if s.onWindow != nil {
		s.onWindow(WindowEvent{Conn: c.info.Conn, Protocol: c.info.Protocol, Window: w, Closed: closed, At: now})
	}
}

// SocketTotals is the sampler's account summed over protocols, for the
// client's report and live display. Has says which fields the kernel
// provides: a total whose field is missing is unknown, not zero.
type SocketTotals struct {
	Has sockstat.Fields
	// Since start, summed over writing connections.
	PeerWindowZero, RwndLimited, SndbufLimited, Busy time.Duration
	PeerWindowCloses                                 int
	// Since start, summed over reading connections.
	OwnWindowZero     time.Duration
	OwnWindowCloses   int
	PeakConnSendQueue int // largest send queue of any one writing connection (since ResetPeak)
	// The last pass.
	SendQueue, Unsent, RecvQueue int
	PeerWindowZeroConnections    int
}

// Totals returns the sampler's totals now.
func (s *SocketSampler) Totals() SocketTotals {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	t := SocketTotals{Has: s.fields}
	for _, st := range s.stats {
		t.PeerWindowZero += st.counters.peerZero
		t.RwndLimited += st.counters.rwndLimited
		t.SndbufLimited += st.counters.sndbufLimited
		t.Busy += st.counters.busy
		t.PeerWindowCloses += st.counters.peerWindowCloses
		t.OwnWindowZero += st.counters.ownZero
		t.OwnWindowCloses += st.counters.ownWindowCloses
		t.PeakConnSendQueue = max(t.PeakConnSendQueue, st.peakQueue)
		t.SendQueue += st.gauges.sendQueue
		t.Unsent += st.gauges.unsent
		t.RecvQueue += st.gauges.recvQueue
		t.PeerWindowZeroConnections += st.gauges.peerZeroConns
	}
	return t
}

// ResetPeak starts a new PeakConnSendQueue in Totals, for a report that
// covers one run of several in the same process.
func (s *SocketSampler) ResetPeak() {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	for p := range s.stats {
		s.stats[p].peakQueue = 0
	}
}

// socketMetric is one exported metric: its description, the kernel fields
// it needs, and how to read it from a protocol's stats (ok false: no value
// now, such as a minimum over no connections).
type socketMetric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	needs sockstat.Fields
	value func(st *socketStats) (v float64, ok bool)
}

func socketMetrics() []socketMetric {
	proto := []string{"protocol"}
	gauge := func(name, help string, needs sockstat.Fields, v func(*socketStats) (float64, bool)) socketMetric {
		return socketMetric{prometheus.NewDesc(name, help, proto, nil), prometheus.GaugeValue, needs, v}
	}
	counter := func(name, help string, needs sockstat.Fields, v func(*socketStats) (float64, bool)) socketMetric {
		return socketMetric{prometheus.NewDesc(name, help, proto, nil), prometheus.CounterValue, needs, v}
	}
	always := func(f func(*socketStats) float64) func(*socketStats) (float64, bool) {
		return func(st *socketStats) (float64, bool) { return f(st), true }
	}
	return []socketMetric{
		gauge("bp_socket_sampled_connections",
			"Connections whose kernel socket statistics were read in the last sampling pass.",
			sockstat.FieldBasic, always(func(st *socketStats) float64 { return float64(st.gauges.sampled) })),
		// Writer side.
		gauge("bp_socket_send_queue_bytes",
			"Bytes in the send queues of writing connections (SIOCOUTQ: written, not yet acknowledged by the peer's kernel), summed.",
			sockstat.FieldSendQueue, always(func(st *socketStats) float64 { return float64(st.gauges.sendQueue) })),
		gauge("bp_socket_unsent_bytes",
			"Bytes in the send queues of writing connections not yet sent at all (SIOCOUTQNSD), summed.",
			sockstat.FieldSendQueueNotSent, always(func(st *socketStats) float64 { return float64(st.gauges.unsent) })),
		gauge("bp_socket_peer_window_min_bytes",
			"Smallest receive window the peer advertised (tcpi_snd_wnd) across writing connections; absent while none is sampled.",
			sockstat.FieldPeerWindow, func(st *socketStats) (float64, bool) {
				return float64(st.gauges.peerWindowMin), st.gauges.peerMinValid
			}),
		gauge("bp_socket_peer_window_zero_connections",
			"Writing connections whose peer advertises a zero receive window right now.",
			sockstat.FieldPeerWindow, always(func(st *socketStats) float64 { return float64(st.gauges.peerZeroConns) })),
		counter("bp_socket_peer_window_zero_seconds_total",
			"Time writing connections saw a zero peer window, summed over connections, measured at each sample.",
			sockstat.FieldPeerWindow, always(func(st *socketStats) float64 { return st.counters.peerZero.Seconds() })),
		counter("bp_socket_busy_seconds_total",
			"Time writing connections had data to send (tcpi_busy_time), summed over connections.",
			sockstat.FieldLimited, always(func(st *socketStats) float64 { return st.counters.busy.Seconds() })),
		counter("bp_socket_rwnd_limited_seconds_total",
			"Time writing connections were stopped by the peer's receive window (tcpi_rwnd_limited), summed over connections.",
			sockstat.FieldLimited, always(func(st *socketStats) float64 { return st.counters.rwndLimited.Seconds() })),
		counter("bp_socket_sndbuf_limited_seconds_total",
			"Time writing connections were stopped by their own full send buffer (tcpi_sndbuf_limited), summed over connections.",
			sockstat.FieldLimited, always(func(st *socketStats) float64 { return st.counters.sndbufLimited.Seconds() })),
		gauge("bp_socket_zero_window_probes",
			"Unanswered zero-window (or keepalive) probes outstanding on writing connections (tcpi_probes), summed.",
			sockstat.FieldBasic, always(func(st *socketStats) float64 { return float64(st.gauges.probes) })),
		// Reader side.
		gauge("bp_socket_recv_queue_bytes",
			"Bytes received and not yet read by the program on reading connections (SIOCINQ), summed.",
			sockstat.FieldRecvQueue, always(func(st *socketStats) float64 { return float64(st.gauges.recvQueue) })),
		gauge("bp_socket_own_window_min_bytes",
			"Smallest receive window this side advertises (tcpi_rcv_wnd) across reading connections; absent while none is sampled.",
			sockstat.FieldOwnWindow, func(st *socketStats) (float64, bool) {
				return float64(st.gauges.ownWindowMin), st.gauges.ownMinValid
			}),
		gauge("bp_socket_own_window_zero_connections",
			"Reading connections advertising a zero receive window right now.",
			sockstat.FieldOwnWindow, always(func(st *socketStats) float64 { return float64(st.gauges.ownZeroConns) })),
		counter("bp_socket_own_window_zero_seconds_total",
			"Time reading connections advertised a zero receive window, summed over connections, measured at each sample.",
			sockstat.FieldOwnWindow, always(func(st *socketStats) float64 { return st.counters.ownZero.Seconds() })),
	}
}

// Describe implements prometheus.Collector.
func (s *SocketSampler) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range s.descs {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector: the last pass's gauges and the
// counters so far, for every protocol, leaving out what the kernel lacks.
func (s *SocketSampler) Collect(ch chan<- prometheus.Metric) {
	if s.interval <= 0 {
		return
	}
	s.statsMu.Lock()
	stats, fields := s.stats, s.fields
	s.statsMu.Unlock()
	for _, m := range s.descs {
		if fields&m.needs != m.needs {
			continue
		}
		for p, st := range stats {
			if v, ok := m.value(&st); ok {
				ch <- prometheus.MustNewConstMetric(m.desc, m.typ, v, string(Protocols[p]))
			}
		}
	}
}
