package sockstat

import (
	"context"
	"net"
	"reflect"
	"runtime"
	"sync"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// DefaultSampleInterval is how often the kernel's view of every connection
// is sampled unless configured otherwise: often enough to see a window
// close and reopen within a pause, cheap enough for thousands of
// connections.
const DefaultSampleInterval = 100 * time.Millisecond

// numProtocols is the number of per-protocol slots (flow.Protocols).
const numProtocols = len(flow.Protocols)

// Sampler reads the kernel's statistics of every open connection at a
// fixed interval, from one goroutine for the whole process, and keeps them
// per protocol with no per-connection detail. It is a flow.Observer:
// connections register in Open and leave in Closing/Closed.
//
//	Open -> register a Reader --+
//	                            v
//	Run: every interval, one pass: Reader.Read each -> per-protocol gauges,
//	     counters, window events -> Stats / Totals / OnWindow / Latest
//	                            ^
//	Closing: last sample, unregister
//
// It is the only place that reads sockets of our own connections:
// pkg/metrics exports Stats, the report reads Totals, the verdict reads a
// connection's Latest sample. Fields the running kernel lacks are left out
// of Has, never shown as zero.
type Sampler struct {
	// interval is the kernel passes' (0: off, or not supported here);
	// streamInterval the stream layer's, which needs no kernel support.
	interval, streamInterval time.Duration
	onWindow                 func(WindowEvent)
	streams                  streamSet
	wake                     chan struct{} // a registration, for an idle Run (woken)

	// passMu makes passes take turns: Run's, and any caller's of Sample
	// (a test, or a final pass at shutdown). A pass reuses scratch and
	// moves each connection's tally from the previous pass's time, so two
	// at once would race on both.
	passMu sync.Mutex

	mu      sync.Mutex
	conns   []*SampledConn // registered connections
	byConn  map[net.Conn]*SampledConn
	scratch []*SampledConn // the pass's copy of conns, reused between passes; passMu guards it

	statsMu sync.Mutex
	stats   [numProtocols]ProtocolStats
	fields  Fields // kernel fields, plus any a sample turned up
}

var _ flow.Observer = (*Sampler)(nil)

// SamplerOptions configure a Sampler.
type SamplerOptions struct {
	// Interval between passes; 0 (or a system without socket statistics)
	// disables sampling: Open then registers nothing and Stats is empty.
	Interval time.Duration
	// OnWindow, if set, is called from the sampling goroutine when a
	// connection's window closes or reopens (own window on reading
	// connections, peer window on writing ones). It must return quickly.
	OnWindow func(WindowEvent)
}

// NewSampler returns a sampler; call Run to start sampling.
func NewSampler(opts SamplerOptions) *Sampler {
	s := &Sampler{interval: opts.Interval, streamInterval: max(opts.Interval, 0), onWindow: opts.OnWindow, byConn: map[net.Conn]*SampledConn{}, wake: make(chan struct{}, 1)}
	s.streams.run = newStreamRun(time.Now())
	if !Supported() {
		s.interval = 0
	}
	if s.interval > 0 {
		s.fields = KernelFields()
	}
	return s
}

// Enabled reports whether the sampler reads the kernel at all.
func (s *Sampler) Enabled() bool { return s.interval > 0 }

// Interval is the time between the kernel's passes (0: disabled).
func (s *Sampler) Interval() time.Duration { return s.interval }

// Run samples every interval until ctx ends. It returns at once when
// sampling is off. A pass over many connections takes time (about 4 µs a
// socket: 40 ms at 10,000), so the next pass starts no sooner than ten
// times the last pass's duration after it: sampling never takes more than
// a tenth of a core, and the counters stay exact because each sample adds
// the time since the previous one.
//
// With nothing registered, Run waits for the next registration instead of
// ticking: the pass that found nothing has published its empty gauges, and
// the next can find nothing new. A wake-up costs an idle Go process far
// more than the pass itself (the runtime's sysmon and a spinning thread
// wake with it): on the 2-core Xeon VM an idle bp-server spent 11 ms of
// CPU a second ticking ten times a second for no connection, and a bare
// 10 Hz timer 5 ms (docs/BENCHMARKS.md, "An idle process's ticks").
func (s *Sampler) Run(ctx context.Context) error {
	interval := s.interval
	if interval <= 0 {
		interval = s.streamInterval // the stream layer needs no kernel support
	}
	if interval <= 0 {
		return nil
	}
	runPaced(ctx, interval, s.pass, s.wake)
	return nil
}

// runPaced calls pass every interval until ctx ends, the next call no
// sooner than ten times the last pass's cost after its start: the cost cap
// every sampler of this package shares (a tenth of a core at most). After
// a pass that reports it found nothing to sample, the next waits for wake
// (nil: never idle) and comes an interval after it.
func runPaced(ctx context.Context, interval time.Duration, pass func(now time.Time) (idle bool), wake <-chan struct{}) {
	// The pass's cost is the CPU time of its thread (passCost), so the
	// goroutine keeps its thread while it samples.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cost := startPassCost()
			idle := pass(now)
			next := max(interval-time.Since(now), 9*cost())
			if idle && wake != nil {
				select {
				case <-ctx.Done():
					return
				case <-wake:
				}
				next = interval
			}
			t.Reset(next)
		}
	}
}

// woken tells an idle Run that something registered (see Run); it never
// blocks, and a wake already pending is enough.
func (s *Sampler) woken() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Open implements flow.Observer: it registers the connection for sampling,
// its socket with the kernel's passes and, when it is a stream of a
// multiplexed connection, the stream with the stream layer's. A socket
// several streams share is registered once, by the first of them, and
// counted once: the others join it, and it leaves when the last of them
// does (socketRef). A connection whose socket cannot be read (no socket,
// not TCP) is left out of the kernel's passes.
func (s *Sampler) Open(info flow.ConnInfo) flow.ConnObserver {
	proto := flow.ProtocolIndex(info.Protocol)
	if proto < 0 {
		return flow.Nop{}
	}
	h := &connHandle{}
	if s.interval > 0 && info.Conn != nil {
		h.socket = s.joinSocket(info, proto)
	}
	if s.streamInterval > 0 && info.Stream != nil {
		h.stream = s.streams.add(info.Stream, proto)
	}
	if h.socket == nil && h.stream == nil {
		return flow.Nop{}
	}
	s.woken()
	return h
}

// joinSocket returns the registered connection of info's socket, with one
// more holder, or registers it; nil when the socket cannot be read.
func (s *Sampler) joinSocket(info flow.ConnInfo, proto int) *SampledConn {
	comparable := reflect.TypeOf(info.Conn).Comparable() // a map key; sockets are pointers
	if comparable {
		s.mu.Lock()
		if c := s.byConn[info.Conn]; c != nil {
			c.holders++
			s.mu.Unlock()
			c.widen(info)
			return c
		}
		s.mu.Unlock()
	}
	r, err := NewReader(info.Conn)
	if err != nil {
		return nil
	}
	c := &SampledConn{s: s, info: info, proto: proto, reader: r, lastAt: time.Now(), holders: 1}
	if s.onWindow != nil {
		c.onWindow = func(w WindowSide, closed bool, now time.Time) { s.notify(c, w, closed, now) }
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if comparable {
		if other := s.byConn[info.Conn]; other != nil { // another stream registered it meanwhile
			other.holders++
			other.widen(info)
			return other
		}
		s.byConn[info.Conn] = c
	}
	c.index = len(s.conns)
	s.conns = append(s.conns, c)
	return c
}

// Conn returns the sampler's handle on the open connection whose socket is
// nc, or nil when it does not sample it (sampling off, not TCP, closed, or
// not opened yet). Through it the verdict reads what the passes saw,
// instead of reading the socket a second time.
func (s *Sampler) Conn(nc net.Conn) *SampledConn {
	if nc == nil || !reflect.TypeOf(nc).Comparable() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byConn[nc]
}

// release drops one holder of c and reports whether it was the last,
// which unregisters it.
func (s *Sampler) release(c *SampledConn) (last bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.holders--; c.holders > 0 {
		return false
	}
	s.unregisterLocked(c)
	return true
}

// unregisterLocked takes c out of the passes; s.mu must be held.
func (s *Sampler) unregisterLocked(c *SampledConn) {
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
	if s.byConn[c.info.Conn] == c {
		delete(s.byConn, c.info.Conn)
	}
}

// Sample runs one pass over every registered connection, as Run does every
// interval, and then over every open stream; now is the time of the pass. It does not allocate once its
// scratch space has grown to the number of connections. It is safe to call
// beside Run: passes take turns.
func (s *Sampler) Sample(now time.Time) {
	s.pass(now)
}

// pass is Sample, reporting whether it found nothing to sample: no
// connection and no stream.
func (s *Sampler) pass(now time.Time) (idle bool) {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	s.mu.Lock()
	s.scratch = append(s.scratch[:0], s.conns...)
	s.mu.Unlock()

	var gauges [numProtocols]Gauges
	var deltas [numProtocols]Counters
	var seen Fields
	for i, c := range s.scratch {
		seen |= c.samplePass(now, &gauges[c.proto], &deltas[c.proto])
		s.scratch[i] = nil // do not keep closed connections alive
	}

	s.statsMu.Lock()
	s.fields |= seen
	for p := range s.stats {
		s.stats[p].addPass(gauges[p], deltas[p])
	}
	s.statsMu.Unlock()
	streams := s.streams.pass(now)
	return len(s.scratch) == 0 && streams == 0
}

// publishFinal adds a closing connection's last deltas; its gauges leave
// with it at the next pass.
func (s *Sampler) publishFinal(proto int, g Gauges, d Counters) {
	s.statsMu.Lock()
	st := &s.stats[proto]
	st.Counters.add(d)
	st.PeakSendQueue = max(st.PeakSendQueue, g.LargestSendQueue)
	st.FirstPeerWindowClose = earliest(st.FirstPeerWindowClose, g.FirstPeerWindowClose)
	st.HeldPeerWindowClose = earliest(st.HeldPeerWindowClose, g.HeldPeerWindowClose)
	s.statsMu.Unlock()
}

// Stats returns, in the order of flow.Protocols, each protocol's gauges of
// the last pass and counters so far, and the fields the kernel provides
// (a value whose field is missing is unknown, not zero).
func (s *Sampler) Stats() ([numProtocols]ProtocolStats, Fields) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats, s.fields
}

// Totals returns the sampler's account summed over protocols now.
func (s *Sampler) Totals() Totals {
	stats, fields := s.Stats()
	return sumTotals(stats[:], fields)
}

// ResetPeak starts a new PeakSendQueue (and Totals.PeakConnSendQueue) and
// FirstPeerWindowClose and HeldPeerWindowClose, and
// a new run of the stream layer's StreamTotals (lowest windows, first
// closures, streams), for a report that covers one run of several in the
// same process.
func (s *Sampler) ResetPeak() {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	for p := range s.stats {
		s.stats[p].PeakSendQueue = 0
		s.stats[p].FirstPeerWindowClose = time.Time{}
		s.stats[p].HeldPeerWindowClose = time.Time{}
	}
	s.streams.resetRun(time.Now())
}

func (s *Sampler) notify(c *SampledConn, w WindowSide, closed bool, now time.Time) {
	if s.onWindow != nil {
		s.onWindow(WindowEvent{Conn: c.info.Conn, Protocol: c.info.Protocol, Window: w, Closed: closed, At: now})
	}
}
