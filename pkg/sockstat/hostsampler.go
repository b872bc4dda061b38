package sockstat

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrNoPass is HostSampler.Stats' error before the first pass.
var ErrNoPass = errors.New("sockstat: no sampling pass yet")

// HostSampler reads the TCP connections of its network namespace with
// one sock_diag dump per pass (DumpHopSockets: the kernel answers only
// sockets on the hop's ports), keeps the ones of one hop (HopPorts), and accounts for them per side the way a Sampler does per
// protocol: the last pass's gauges, and counters that add each socket's
// growth since the previous pass (a tally per socket, keyed by its
// cookie), kept when the socket closes so that they never go down.
//
//	every interval (runPaced): DumpHopSockets -> side by ports -> tally per
//	    socket -> per-side Gauges, Counters --> Stats --> pkg/metrics
//
// A hop's sockets both read and write, so every socket counts on both the
// writer and the reader side of the gauges. A pass that fails (the dump
// refused, a broken answer) makes Stats fail until a pass works again: a
// figure it could not read is absent, never an old or a zero one.
type HostSampler struct {
	interval time.Duration
	hop      hopClassifier
	dump     func([]DiagSocket) ([]DiagSocket, error)
	onPass   func(PassState)

	// Touched only by the sampling goroutine.
	buf     []DiagSocket
	socks   map[uint64]*hostSocket
	pass    uint64
	lastErr error
	reports int

	mu     sync.Mutex
	stats  [NumSides]ProtocolStats
	fields Fields
	err    error
}

// hostSocket is the account of one socket between passes.
type hostSocket struct {
	tally
	lastAt time.Time
	pass   uint64 // the last pass that saw it
}

// HostSamplerOptions configure a HostSampler.
type HostSamplerOptions struct {
	Interval time.Duration // between passes; must be positive for Run
	Ports    HopPorts
	// OnPass, if set, hears the first pass's outcome and every change
	// after it (a failure, a different failure, a recovery), from the
	// sampling goroutine.
	OnPass func(PassState)
}

// PassState is the outcome of a pass, for OnPass.
type PassState struct {
	Err error // why the pass failed; nil when it worked
	// Sockets is how many sockets the dump returned, Hop how many of
	// them are the hop's; Fields the fields seen so far.
	Sockets, Hop int
	Fields       Fields
}

// NewHostSampler returns a sampler of the hop's sockets; call Run.
func NewHostSampler(opts HostSamplerOptions) *HostSampler {
	ports := opts.Ports
	return &HostSampler{
		interval: opts.Interval, hop: newHopClassifier(ports),
		dump:   func(buf []DiagSocket) ([]DiagSocket, error) { return DumpHopSockets(buf, ports) },
		onPass: opts.OnPass, socks: map[uint64]*hostSocket{}, err: ErrNoPass,
		fields: diagFields(KernelFields()),
	}
}

// diagFields are the fields a dump gives on a kernel whose TCP_INFO has
// info: the queues always, the unsent bytes with tcpi_notsent_bytes.
func diagFields(info Fields) Fields {
	f := info | FieldRecvQueue | FieldSendQueue
	if info&FieldNotSentBytes != 0 {
		f |= FieldSendQueueNotSent
	}
	return f
}

// Run samples every interval (paced like a Sampler's passes) until ctx
// ends.
func (h *HostSampler) Run(ctx context.Context) error {
	if h.interval <= 0 {
		return errors.New("sockstat: host sampler needs a positive interval")
	}
	// Never idle: each pass looks for the hop's sockets anew.
	runPaced(ctx, h.interval, func(now time.Time) bool { h.Sample(now); return false }, nil)
	return nil
}

// Sample runs one pass at now, as Run does every interval.
func (h *HostSampler) Sample(now time.Time) error {
	socks, err := h.dump(h.buf[:0])
	h.buf = socks[:0]
	if err != nil {
		h.mu.Lock()
		h.err = err
		h.mu.Unlock()
		h.report(PassState{Err: err, Fields: h.Fields()})
		return err
	}
	h.pass++
	var gauges [NumSides]Gauges
	var deltas [NumSides]Counters
	var seen Fields
	hop := 0
	for i := range socks {
		side, ok := h.hop.side(&socks[i])
		if !ok {
			continue
		}
		hop++
		seen |= h.account(&socks[i], now, &gauges[side], &deltas[side])
	}
	for k, s := range h.socks {
		if s.pass != h.pass { // closed: its counts stay in the totals
			delete(h.socks, k)
		}
	}
	h.mu.Lock()
	h.err = nil
	h.fields |= seen
	for i := range h.stats {
		h.stats[i].addPass(gauges[i], deltas[i])
	}
	fields := h.fields
	h.mu.Unlock()
	h.report(PassState{Sockets: len(socks), Hop: hop, Fields: fields})
	return nil
}

// account adds one of the hop's sockets to the pass, as both writer and
// reader, and returns its fields.
func (h *HostSampler) account(ds *DiagSocket, now time.Time, g *Gauges, d *Counters) Fields {
	s := h.socks[ds.Cookie]
	if s == nil {
		s = &hostSocket{lastAt: now}
		h.socks[ds.Cookie] = s
	}
	dt := max(now.Sub(s.lastAt), 0)
	s.lastAt, s.pass, s.sample = now, h.pass, ds.Sample
	g.Sampled++
	s.addWriter(now, dt, g, d)
	s.addReader(now, dt, g, d)
	return ds.Sample.Has
}

// report calls OnPass for the first pass and whenever the outcome changes.
func (h *HostSampler) report(st PassState) {
	same := (st.Err == nil) == (h.lastErr == nil) && (st.Err == nil || st.Err.Error() == h.lastErr.Error())
	h.lastErr = st.Err
	if h.reports > 0 && same {
		return
	}
	h.reports++
	if h.onPass != nil {
		h.onPass(st)
	}
}

// Stats returns, in Side order, each side's gauges of the last pass and
// counters so far, and the fields seen; err is non-nil before the first
// pass and while the last pass failed (then nothing is known).
func (h *HostSampler) Stats() ([NumSides]ProtocolStats, Fields, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stats, h.fields, h.err
}

// Fields returns the fields the passes have seen (or, before any socket,
// the ones this kernel provides).
func (h *HostSampler) Fields() Fields {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fields
}
