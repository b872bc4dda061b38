package sockstat

import (
	"slices"
	"sync"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// The stream layer: one stream of a multiplexed connection (HTTP/2, gRPC)
// has a flow-control window of its own and shares the connection's, on top
// of TCP's. The kernel sees none of it: a stream whose window is shut
// leaves its socket healthy. So a Sampler also polls each open stream's
// flow.StreamConn at its passes, and once more as the stream closes, and
// keeps the figures per protocol like the kernel's:
//
//	Open (info.Stream) -> streamSet.add --+
//	pass: StreamLayer() each -> per-protocol StreamGauges, StreamCounters,
//	      the run's lowest windows and first closures -> StreamStats / StreamTotals
//	Closing/Closed: last poll, leave

// StreamGauges are one pass's view of one protocol's open streams.
type StreamGauges struct {
	// Streams is how many open streams the pass polled.
	Streams int
	// The smallest window over the open streams, -1 when none of their
	// transports tells: the lowest, not the sum, because one shut window
	// stops its stream however open the others are, and a sum would hide
	// it (SendWindowClosedStreams counts them).
	SendStreamWindowMin, SendConnWindowMin int64
	RecvStreamWindowMin, RecvConnWindowMin int64
	// SendWindowClosedStreams is how many streams may send nothing now:
	// their send stream window is zero.
	SendWindowClosedStreams int
}

// StreamCounters accumulate over streams: the time their writes waited on
// each layer, and the WINDOW_UPDATE frames (the connection's counted once,
// on stream 0 of each connection). They add each stream's growth between
// polls, so nothing is lost when a stream closes.
type StreamCounters struct {
	BlockedStream, BlockedConn, BlockedTCP   time.Duration
	WindowUpdatesReceived, WindowUpdatesSent uint64
}

func (c *StreamCounters) add(d StreamCounters) {
	c.BlockedStream += d.BlockedStream
	c.BlockedConn += d.BlockedConn
	c.BlockedTCP += d.BlockedTCP
	c.WindowUpdatesReceived += d.WindowUpdatesReceived
	c.WindowUpdatesSent += d.WindowUpdatesSent
}

// StreamProtocolStats is the account of one protocol's streams: the last
// pass's gauges and the counters since start.
type StreamProtocolStats struct {
	StreamGauges
	StreamCounters
}

// StreamTotals is the stream layer summed over protocols, for the client's
// report: the counters since the sampler's start (Since counts them from
// a base), and the run's figures since the last ResetPeak.
type StreamTotals struct {
	StreamCounters
	// Streams is how many streams opened since ResetPeak; ClosedStreams
	// how many of them had their send stream window shut at some time.
	Streams, ClosedStreams int
	// The lowest windows polled since ResetPeak (0 when the transport
	// saw a window reach zero between polls), -1 when unknown.
	SendStreamWindowLowest, SendConnWindowLowest int64
	RecvStreamWindowLowest, RecvConnWindowLowest int64
	StreamClosedAt, ConnClosedAt                 time.Time // the first send window to reach zero; zero: none did
	StreamHeldAt, ConnHeldAt                     time.Time // the first closing that held (flow.StreamStats); zero: none did
	Sources                                      []string  // how the transports found the figures (StreamStats.Source), sorted
}

// Since returns t with its counters counted from base (an earlier
// StreamTotals of the same sampler).
func (t StreamTotals) Since(base StreamTotals) StreamTotals {
	c, b := &t.StreamCounters, base.StreamCounters
	c.BlockedStream -= b.BlockedStream
	c.BlockedConn -= b.BlockedConn
	c.BlockedTCP -= b.BlockedTCP
	c.WindowUpdatesReceived -= b.WindowUpdatesReceived
	c.WindowUpdatesSent -= b.WindowUpdatesSent
	return t
}

// streamRun is what the run since ResetPeak saw of the streams.
type streamRun struct {
	since                    time.Time
	streams, closed          int
	lowest                   [4]int64 // send stream, send conn, recv stream, recv conn; -1 unknown
	streamClosed, connClosed time.Time
	streamHeld, connHeld     time.Time
	sources                  []string
}

func newStreamRun(now time.Time) streamRun {
	return streamRun{since: now, lowest: [4]int64{-1, -1, -1, -1}}
}

// streamSet is a Sampler's open streams and their account.
type streamSet struct {
	mu      sync.Mutex
	streams []*sampledStream
	scratch []*sampledStream

	statsMu sync.Mutex
	stats   [numProtocols]StreamProtocolStats
	run     streamRun
}

// sampledStream is one open stream and its previous poll, for deltas.
type sampledStream struct {
	set   *streamSet
	sc    flow.StreamConn
	proto int
	index int // position in set.streams, under set.mu; -1 once gone

	mu         sync.Mutex // guards the fields below
	done       bool
	last       flow.StreamStats
	sawClosed  bool // counted in the run's closed streams
	sameRun    bool // opened in the current run (not before ResetPeak)
	sawSources bool
}

// add registers an open stream.
func (ss *streamSet) add(sc flow.StreamConn, proto int) *sampledStream {
	st := &sampledStream{set: ss, sc: sc, proto: proto, sameRun: true}
	ss.statsMu.Lock()
	ss.run.streams++
	ss.statsMu.Unlock()
	ss.mu.Lock()
	st.index = len(ss.streams)
	ss.streams = append(ss.streams, st)
	ss.mu.Unlock()
	return st
}

// leave polls the stream once more and takes it out of the passes; its
// gauges leave with it at the next pass.
func (st *sampledStream) leave() {
	ss := st.set
	ss.mu.Lock()
	if i := st.index; i >= 0 {
		last := len(ss.streams) - 1
		ss.streams[i] = ss.streams[last]
		ss.streams[i].index = i
		ss.streams[last] = nil
		ss.streams = ss.streams[:last]
		st.index = -1
	}
	ss.mu.Unlock()
	var g StreamGauges
	var d StreamCounters
	seen := newStreamRun(time.Time{})
	st.mu.Lock()
	if !st.done {
		st.pollLocked(&g, &d, &seen)
		st.done = true
	}
	st.mu.Unlock()
	ss.statsMu.Lock()
	ss.stats[st.proto].StreamCounters.add(d)
	ss.run.merge(&seen)
	ss.statsMu.Unlock()
}

// pass polls every open stream once and returns how many it polled.
func (ss *streamSet) pass(time.Time) (polled int) {
	ss.mu.Lock()
	ss.scratch = append(ss.scratch[:0], ss.streams...)
	ss.mu.Unlock()
	var gauges [numProtocols]StreamGauges
	for p := range gauges {
		g := &gauges[p]
		g.SendStreamWindowMin, g.SendConnWindowMin, g.RecvStreamWindowMin, g.RecvConnWindowMin = -1, -1, -1, -1
	}
	var deltas [numProtocols]StreamCounters
	seen := newStreamRun(time.Time{})
	for i, st := range ss.scratch {
		st.mu.Lock()
		if !st.done {
			st.pollLocked(&gauges[st.proto], &deltas[st.proto], &seen)
		}
		st.mu.Unlock()
		ss.scratch[i] = nil // do not keep closed streams alive
	}
	ss.statsMu.Lock()
	for p := range ss.stats {
		ss.stats[p].StreamGauges = gauges[p]
		ss.stats[p].StreamCounters.add(deltas[p])
	}
	ss.run.merge(&seen)
	ss.statsMu.Unlock()
	return len(ss.scratch)
}

// pollLocked reads the stream's figures and adds them to the pass: the
// gauges, the counters' growth since the last poll, and what the run
// sees (seen). st.mu must be held.
func (st *sampledStream) pollLocked(g *StreamGauges, d *StreamCounters, seen *streamRun) {
	now := st.sc.StreamLayer()
	prev := st.last
	st.last = now
	g.Streams++
	lowest := func(g *int64, w int64) {
		if w >= 0 && (*g < 0 || w < *g) {
			*g = w
		}
	}
	lowest(&g.SendStreamWindowMin, now.SendStreamWindow)
	lowest(&g.SendConnWindowMin, now.SendConnWindow)
	lowest(&g.RecvStreamWindowMin, now.RecvStreamWindow)
	lowest(&g.RecvConnWindowMin, now.RecvConnWindow)
	if now.SendStreamWindow == 0 {
		g.SendWindowClosedStreams++
	}
	d.BlockedStream += max(now.BlockedStream-prev.BlockedStream, 0)
	d.BlockedConn += max(now.BlockedConn-prev.BlockedConn, 0)
	d.BlockedTCP += max(now.BlockedTCP-prev.BlockedTCP, 0)
	d.WindowUpdatesReceived += now.WindowUpdatesReceived - min(prev.WindowUpdatesReceived, now.WindowUpdatesReceived)
	d.WindowUpdatesSent += now.WindowUpdatesSent - min(prev.WindowUpdatesSent, now.WindowUpdatesSent)
	if !st.sameRun {
		return // a stream of an earlier run: its figures are not this run's
	}
	for i, w := range [4]int64{now.SendStreamWindow, now.SendConnWindow, now.RecvStreamWindow, now.RecvConnWindow} {
		lowest(&seen.lowest[i], w)
	}
	if !now.StreamClosedAt.IsZero() {
		lowest(&seen.lowest[0], 0)
		seen.streamClosed = earliest(seen.streamClosed, now.StreamClosedAt)
	}
	if !now.ConnClosedAt.IsZero() {
		lowest(&seen.lowest[1], 0)
		seen.connClosed = earliest(seen.connClosed, now.ConnClosedAt)
	}
	seen.streamHeld = earliest(seen.streamHeld, now.StreamHeldAt)
	seen.connHeld = earliest(seen.connHeld, now.ConnHeldAt)
	if !st.sawClosed && (now.SendStreamWindow == 0 || !now.StreamClosedAt.IsZero()) {
		st.sawClosed = true
		seen.closed++
	}
	if !st.sawSources && now.Source != "" {
		st.sawSources = true
		seen.sources = append(seen.sources, now.Source)
	}
}

// earliest is the earlier of two times, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// merge adds what a pass saw to the run.
func (r *streamRun) merge(seen *streamRun) {
	for i, w := range seen.lowest {
		if w >= 0 && (r.lowest[i] < 0 || w < r.lowest[i]) {
			r.lowest[i] = w
		}
	}
	r.closed += seen.closed
	r.streamClosed = r.earliestSince(r.streamClosed, seen.streamClosed)
	r.connClosed = r.earliestSince(r.connClosed, seen.connClosed)
	r.streamHeld = r.earliestSince(r.streamHeld, seen.streamHeld)
	r.connHeld = r.earliestSince(r.connHeld, seen.connHeld)
	for _, src := range seen.sources {
		if !slices.Contains(r.sources, src) {
			r.sources = append(r.sources, src)
		}
	}
}

// earliestSince is the earlier of a and b, b counting only if the run
// saw it (not before its start).
func (r *streamRun) earliestSince(a, b time.Time) time.Time {
	if b.Before(r.since) {
		return a
	}
	return earliest(a, b)
}

// resetRun starts a new run's account: the streams open now belong to the
// last run.
func (ss *streamSet) resetRun(now time.Time) {
	ss.mu.Lock()
	for _, st := range ss.streams {
		st.mu.Lock()
		st.sameRun = false
		st.mu.Unlock()
	}
	ss.mu.Unlock()
	ss.statsMu.Lock()
	ss.run = newStreamRun(now)
	ss.statsMu.Unlock()
}

// StreamStats returns, in the order of flow.Protocols, each protocol's
// stream-layer gauges of the last pass and counters so far.
func (s *Sampler) StreamStats() [numProtocols]StreamProtocolStats {
	s.streams.statsMu.Lock()
	defer s.streams.statsMu.Unlock()
	return s.streams.stats
}

// StreamsEnabled reports whether the sampler polls streams at all (it
// needs no kernel support, only a positive interval).
func (s *Sampler) StreamsEnabled() bool { return s.streamInterval > 0 }

// StreamTotals returns the stream layer summed over protocols: the
// counters since start and the run's figures since ResetPeak.
func (s *Sampler) StreamTotals() StreamTotals {
	ss := &s.streams
	ss.statsMu.Lock()
	defer ss.statsMu.Unlock()
	var t StreamTotals
	for _, st := range ss.stats {
		t.StreamCounters.add(st.StreamCounters)
	}
	r := ss.run
	t.Streams, t.ClosedStreams = r.streams, r.closed
	t.SendStreamWindowLowest, t.SendConnWindowLowest = r.lowest[0], r.lowest[1]
	t.RecvStreamWindowLowest, t.RecvConnWindowLowest = r.lowest[2], r.lowest[3]
	t.StreamClosedAt, t.ConnClosedAt = r.streamClosed, r.connClosed
	t.StreamHeldAt, t.ConnHeldAt = r.streamHeld, r.connHeld
	t.Sources = slices.Sorted(slices.Values(r.sources))
	return t
}
