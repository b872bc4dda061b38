package verdict

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// Options configure an Observer.
type Options struct {
	// StallThreshold is the blocked time from which a write counts as
	// blocked (flow.DefaultStallThreshold when 0): the session's own.
	StallThreshold time.Duration
	// Interval between passes (100 ms when 0).
	Interval time.Duration
	// Kernel is the socket sampler among the run's observers, whose
	// samples (send queue, peer window) of connections whose server seems
	// stopped the verdict reads; nil: the kernel is not read. The verdict
	// reads no socket itself: each connection is sampled once per pass,
	// by the sampler.
	Kernel *sockstat.Sampler
	// KernelReason says why Kernel is off, for the verdict's reasons
	// ("sampling is off (--sample-interval 0)").
	KernelReason string
}

// Bounds on what one connection keeps.
const (
	maxStalls  = 8
	maxBlocks  = 16
	ackGaps    = 32 // recent gaps between acks, for the ack interval
	ringSize   = 8  // recent kernel samples, for the send queue of a blocked write
	defaultGap = 500 * time.Millisecond
)

// Observer is a flow.Observer that keeps each writing connection's
// timeline for the verdict. The write path costs one atomic add and one
// atomic load per write; acks and blocked writes, which are rare, take a
// per-connection lock. Run drives the periodic pass that notices a stall
// while it lasts (for the live display) and reads the kernel then.
type Observer struct {
	opts  Options
	start time.Time

	mu    sync.Mutex
	conns []*conn
	// arena is Verdict's between judgments (nil while one is judging):
	// kept here, not in a sync.Pool, which empties at collections and,
	// under the race detector, drops what it is given at random.
	arena *timelineArena
	// streamSockets are the sockets under the writing connections that
	// are streams of multiplexed ones (HTTP/2, gRPC), each with its open
	// writing streams: how many connections the streams are on ("over 8
	// streams on 2 connections"), and how many share a socket's send
	// queue (kernel.go).
	streamSockets map[net.Conn]int
}

var _ flow.Observer = (*Observer)(nil)

// New returns an observer whose clock starts now: the run's start.
func New(opts Options) *Observer {
	if opts.StallThreshold <= 0 {
		opts.StallThreshold = flow.DefaultStallThreshold
	}
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	if opts.Kernel != nil && !sockstat.Supported() {
		opts.Kernel = nil
		opts.KernelReason = "not supported on this system"
	}
	return &Observer{opts: opts, start: time.Now()}
}

func (o *Observer) since(t time.Time) time.Duration { return t.Sub(o.start) }

// kSample is one kernel reading of a connection's socket.
type kSample struct {
	at        time.Duration
	sendQueue int64 // -1: not provided
}

// conn is one writing connection's timeline.
type conn struct {
	flow.Nop
	o *Observer
	// socket is the connection's socket, by which the sampler knows it;
	// kernel the sampler's handle on it (nil: the kernel is not read).
	socket net.Conn
	kernel *sockstat.SampledConn
	// stream: the connection is one stream of a multiplexed one, whose
	// socket (and send queue) its sibling streams share.
	stream bool

	written   atomic.Int64
	blockedNs atomic.Int64 // time in write calls, in all
	pipeEmpty atomic.Bool  // every written byte was acknowledged (or none written)
	// clock is the write call in progress; once it has seen a start, a
	// pass can trust that no write in progress means not blocked.
	clock flow.WriteClock

	mu          sync.Mutex
	closed      bool
	acked       int64
	acks        int
	hasProgress bool
	lastAck     time.Duration // when the last ack that moved arrived
	// written when it arrived
	writtenAtLastAck int64
	// hist: the last acks that moved, the latest first (nHist of them),
	// from which a stall's stop is placed (stop.go).
	hist  [3]ackPoint
	nHist int
	// path: the relays the server echoed in its first ack (pathKnown).
	path      []string
	pathKnown bool
	// seenFrom: the address the server sees this connection from (its
	// first ack; "": not said); local this client's own end of it.
	seenFrom, local string
	// blockedInStalls: time blocked writes spent inside stalls. waits are
	// the last blocked writes that returned (nWaits of them): a stall is
	// often recorded after a write that waited in it returned (a pass
	// opens it, or the ack that ends it records it, with its start placed
	// back at the last acks), and then counts their time in it (stop.go).
	blockedInStalls time.Duration
	waits           [maxBlocks]span
	nWaits          int
	// pending: bytes unacknowledged since pendingSince (the last ack that
	// moved, or the first write after an empty pipe).
	pending          bool
	pendingFromAck   bool
	pendingSince     time.Duration
	writtenAtPending int64
	peerZeroAt       time.Duration // first zero peer window since pendingSince, -1 none
	peerWindowKnown  bool          // a kernel sample had the peer's window
	gaps             [ackGaps]time.Duration
	nGaps            int
	ackInterval      time.Duration
	stalls           []Stall
	stallsDropped    int
	stallOpen        bool
	blocks           []Block
	blocksDropped    int
	// The pass's view of the writes: a write in progress since stuckSince
	// while bytes are pending (from WriteStarting; without it, no write
	// accepted since stuckSince).
	// were pending.
	lastPassWritten int64
	lastPassAt      time.Duration
	stuck           bool
	stuckSince      time.Duration
	ring            [ringSize]kSample
	nRing           int
	lastSampleAt    time.Time // the sampler's last sample put in ring
}

// Open implements flow.Observer. Connections on which this side does not
// write are not followed.
func (o *Observer) Open(info flow.ConnInfo) flow.ConnObserver {
	if !info.Writes {
		return flow.Nop{}
	}
	c := &conn{o: o, socket: info.Conn, peerZeroAt: -1}
	if info.Conn != nil {
		c.local = info.Conn.LocalAddr().String()
	}
	c.pipeEmpty.Store(true)
	c.findKernel()
	o.mu.Lock()
	o.conns = append(o.conns, c)
	if info.Stream != nil && info.Conn != nil && reflect.TypeOf(info.Conn).Comparable() {
		if o.streamSockets == nil {
			o.streamSockets = map[net.Conn]int{}
		}
		o.streamSockets[info.Conn]++
		c.stream = true
	}
	o.mu.Unlock()
	return c
}

// stallGap is how long acks must stand still, with bytes waiting, to count
// as the server having stopped: five ack intervals, at least 500 ms.
func (c *conn) stallGap() time.Duration {
	iv := c.ackInterval
	if iv <= 0 {
		iv = flow.DefaultAckInterval
	}
	return max(5*iv, defaultGap)
}

// WriteStarting implements flow.WriteStartObserver: a blocked write is seen
// while it is blocked, not guessed from writes standing still (a writer that
// has simply finished writing is not blocked).
func (c *conn) WriteStarting(began time.Time) { c.clock.Start(began) }

var _ flow.WriteStartObserver = (*conn)(nil)

// Wrote implements flow.ConnObserver: the hot path.
func (c *conn) Wrote(n int, blocked time.Duration, stalled bool) {
	c.clock.Stop()
	w := c.written.Add(int64(n))
	c.blockedNs.Add(int64(blocked))
	if c.pipeEmpty.Load() && n > 0 {
		c.firstPending(w, int64(n), blocked)
	}
	if stalled {
		c.blocked(w, int64(n), blocked)
	}
}

// firstPending: the first write after every byte had been acknowledged.
func (c *conn) firstPending(w, n int64, blocked time.Duration) {
	at := c.o.since(time.Now()) - blocked
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pipeEmpty.Store(false)
	if !c.pending && w > c.acked {
		// Acks that came while the write was in progress (it began
		// before them) moved: the bytes wait for acks from the last one.
		c.pending, c.pendingFromAck = true, false
		c.pendingSince, c.writtenAtPending = at, w-n
		if c.hasProgress && c.lastAck > at {
			c.pendingSince, c.writtenAtPending = c.lastAck, max(w-n, c.acked)
		}
		c.peerZeroAt = -1
	}
}

// blocked records a write call blocked for at least the stall threshold.
func (c *conn) blocked(w, n int64, d time.Duration) {
	end := c.o.since(time.Now())
	began := end - d
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stuck = false
	c.blockedInStalls += c.stalledPart(began, end)
	c.waits[c.nWaits%len(c.waits)] = span{from: began, to: end}
	c.nWaits++
	if len(c.blocks) >= maxBlocks {
		c.blocksDropped++
		return
	}
	c.blocks = append(c.blocks, Block{Began: began, Ended: end, WrittenBefore: w - n, Size: n, SendQueue: c.sendQueueIn(began, end)})
}

// sendQueueIn is the largest send queue sampled between from and to, or -1.
func (c *conn) sendQueueIn(from, to time.Duration) int64 {
	sq := int64(-1)
	for i := 0; i < min(c.nRing, ringSize); i++ {
		if s := c.ring[i]; s.at >= from && s.at <= to {
			sq = max(sq, s.sendQueue)
		}
	}
	return sq
}

// Acked implements flow.ConnObserver.
//
// A write call's bytes count as written when it returns, so during a
// large one (a 4 MiB payload takes 335 ms at 100 Mbit/s) the acks
// overtake the count: the bytes they count were written, and a write in
// progress has bytes waiting for acks, so it keeps the connection pending.
func (c *conn) Acked(delta int64) {
	now := c.o.since(time.Now())
	w := c.written.Load()
	_, writing := c.clock.Began()
	c.mu.Lock()
	defer c.mu.Unlock()
	written := w // the writes' own count: the ack interval is learnt from it
	w = max(w, c.acked+delta)
	switch {
	case c.stallOpen:
		st := &c.stalls[len(c.stalls)-1]
		st.PeakInPipe = max(st.PeakInPipe, w-st.AckedBytes)
		st.Until, st.Resumed = now, true
		c.stallOpen = false
	case c.pending && now-c.pendingSince >= c.stallGap():
		// A stall the pass did not see (it runs every interval): recorded
		// now that it is over.
		st := c.newStall(now, w)
		st.Until, st.Resumed = now, true
		c.addStall(st)
	case c.hasProgress && c.writtenAtLastAck < written:
		// Bytes were written since the last ack: the time to this one is
		// an ack interval, or more when the writer was slow to write.
		c.gaps[c.nGaps%ackGaps] = now - c.lastAck
		c.nGaps++
		if c.nGaps >= 3 {
			c.ackInterval = lowQuartile(c.gaps[:min(c.nGaps, ackGaps)])
		}
	}
	c.acked += delta
	c.acks++
	c.pushAck(ackPoint{at: now, acked: c.acked, written: w})
	c.hasProgress, c.lastAck, c.writtenAtLastAck = true, now, written
	if w > c.acked || writing {
		c.pending, c.pendingFromAck = true, true
		c.pendingSince, c.writtenAtPending = now, w
	} else {
		c.pending, c.pendingFromAck = false, false
		c.pipeEmpty.Store(true)
	}
	c.peerZeroAt = -1
}

// newStall describes the stall under way since pendingSince, at offset at
// with w bytes written. When it began at an ack, the stop is placed from
// the acks around it (placeStop, stop.go): exact in bytes, estimated in
// time. c.mu must be held.
func (c *conn) newStall(at time.Duration, w int64) Stall {
	st := Stall{Since: c.pendingSince, LastAckAt: -1, Until: at, AckedBytes: c.acked,
		WrittenAtSince: c.writtenAtPending, PeakInPipe: w - c.acked, NoAckYet: !c.hasProgress,
		PeerWindowZeroAt: c.peerZeroAt}
	if c.pendingFromAck && c.hasProgress {
		iv := c.ackInterval
		if iv <= 0 {
			iv = flow.DefaultAckInterval
		}
		st.LastAckAt = c.lastAck
		st.Since, st.WrittenAtSince, st.StopWithin = placeStop(c.hist[:c.nHist], iv)
		// Placed from acks that straddle the stall before (one ack ended
		// it, and no other came since), the stop would fall inside that
		// stall; this one began no earlier than the ack that ended it,
		// and the bytes that ack counted were read within an interval of
		// it.
		if n := len(c.stalls); n > 0 && st.Since < c.stalls[n-1].Until {
			st.Since, st.WrittenAtSince = c.stalls[n-1].Until, c.hist[0].written
			st.StopWithin = min(st.StopWithin, iv)
		}
	}
	return st
}

// lowQuartile is the value a quarter of the way up: the ack interval, from
// gaps of which some were longer because the writer wrote nothing.
// It sorts a copy on the stack: it runs at every ack.
func lowQuartile(v []time.Duration) time.Duration {
	var buf [ackGaps]time.Duration
	s := buf[:copy(buf[:], v)]
	slices.Sort(s)
	return s[(len(s)-1)/4]
}

func (c *conn) addStall(st Stall) bool {
	if len(c.stalls) >= maxStalls {
		c.stallsDropped++
		return false
	}
	c.blockedInStalls += c.waitedIn(st)
	c.stalls = append(c.stalls, st)
	return true
}

// Closed implements flow.ConnObserver.
func (c *conn) Closed(error) {
	now := c.o.since(time.Now())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stallOpen {
		c.stalls[len(c.stalls)-1].Until = now
		c.stallOpen = false
	}
	c.closed = true
	c.stuck = false
	if c.stream {
		c.o.mu.Lock()
		c.o.streamSockets[c.socket]--
		c.o.mu.Unlock()
	}
}

// Run passes over the connections every interval until ctx ends.
func (o *Observer) Run(ctx context.Context) {
	t := time.NewTicker(o.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			o.Pass(now)
		}
	}
}

// snapshotConns is the connections now, in a slice from a pool: the
// passes, the live display and the verdict's metrics walk them several
// times a second, and a fresh copy each time (152 KB at 19,000
// connections) was the largest part of a slow client's garbage. The
// caller hands it back with releaseConns.
func (o *Observer) snapshotConns() *[]*conn {
	p, _ := connSnapshots.Get().(*[]*conn)
	if p == nil {
		p = new([]*conn)
	}
	o.mu.Lock()
	*p = append((*p)[:0], o.conns...)
	o.mu.Unlock()
	return p
}

// connSnapshots are snapshotConns' slices between uses.
var connSnapshots sync.Pool

// releaseConns returns a snapshot to the pool, holding no connection.
func releaseConns(p *[]*conn) {
	clear(*p)
	*p = (*p)[:0]
	connSnapshots.Put(p)
}

// Pass looks at every connection once, as Run does every interval: it
// opens a stall once acks have stood still long enough, notes writes that
// stopped moving, and reads the kernel of connections that look stopped.
func (o *Observer) Pass(now time.Time) {
	at := o.since(now)
	conns := o.snapshotConns()
	defer releaseConns(conns)
	for _, c := range *conns {
		c.pass(at)
	}
}

func (c *conn) pass(at time.Duration) {
	w := c.written.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	began, writing := c.clock.Began()
	if !c.pending && (w > c.acked || writing) { // a first write Wrote did not catch, or one in progress
		c.pending, c.pendingFromAck = true, false
		c.pendingSince, c.writtenAtPending = at, c.acked
		if writing {
			c.pendingSince = min(at, max(c.o.since(began), c.lastAck))
		}
		c.peerZeroAt = -1
	}
	// In the pipe: what was written, at least what the acks counted (a
	// large write in progress, see Acked).
	inPipeW := max(w, c.acked)
	if c.pending && !c.stallOpen && at-c.pendingSince >= c.stallGap() {
		c.stallOpen = c.addStall(c.newStall(at, inPipeW))
	}
	var st *Stall
	if c.stallOpen {
		st = &c.stalls[len(c.stalls)-1]
		st.Until = at
		st.PeakInPipe = max(st.PeakInPipe, inPipeW-st.AckedBytes)
	}
	switch {
	case writing && c.pending:
		c.stuck, c.stuckSince = true, c.o.since(began)
	case !writing && c.clock.StartsSeen():
		c.stuck = false // no write in progress: not blocked, whatever stands still
	case w == c.lastPassWritten && c.pending:
		if !c.stuck {
			c.stuck, c.stuckSince = true, c.lastPassAt
		}
	default:
		c.stuck = false
	}

	c.lastPassWritten, c.lastPassAt = w, at
	iv := c.ackInterval
	if iv <= 0 {
		iv = flow.DefaultAckInterval
	}
	if c.stuck || (c.pending && at-c.pendingSince >= 2*iv) {
		c.readKernel(st)
	}
}

// timeline copies the connection's timeline at offset at; a write stuck
// for at least threshold counts as an ongoing block. Its stalls and
// blocks are copied into a's slices (nil: slices of its own).
func (c *conn) timeline(at, threshold time.Duration, a *timelineArena) Timeline {
	if a == nil {
		a = new(timelineArena)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	tl := Timeline{
		Written: c.written.Load(), Acked: c.acked, Acks: c.acks, AckInterval: c.ackInterval,
		StallsDropped: c.stallsDropped, BlocksDropped: c.blocksDropped,
		Kernel: c.kernel != nil, PeerWindowKnown: c.peerWindowKnown, Stream: c.stream, Blocked: time.Duration(c.blockedNs.Load()),
		BlockedInStalls: c.blockedInStalls, Path: slices.Clone(c.path), PathKnown: c.pathKnown,
		SeenFrom: c.seenFrom, LocalAddr: c.local,
	}
	n := len(a.stalls)
	a.stalls = append(a.stalls, c.stalls...)
	tl.Stalls = a.stalls[n:len(a.stalls):len(a.stalls)]
	n = len(a.blocks)
	a.blocks = append(a.blocks, c.blocks...)
	if c.stuck && !c.closed && at-c.stuckSince >= threshold {
		tl.Blocked += at - c.stuckSince
		tl.BlockedInStalls += c.stalledPart(c.stuckSince, at)
		if len(c.blocks) < maxBlocks {
			a.blocks = append(a.blocks, Block{Began: c.stuckSince, Ended: at, Ongoing: true,
				WrittenBefore: c.lastPassWritten, SendQueue: c.sendQueueIn(c.stuckSince, at)})
		}
	}
	tl.Blocks = a.blocks[n:len(a.blocks):len(a.blocks)]
	return tl
}

// Timelines returns every writing connection's timeline now.
func (o *Observer) Timelines(now time.Time) []Timeline {
	return o.timelinesInto(nil, now)
}

// timelinesInto appends every writing connection's timeline now to a's
// timelines (nil: a slice of their own, and each timeline's slices its own).
func (o *Observer) timelinesInto(a *timelineArena, now time.Time) []Timeline {
	at := o.since(now)
	conns := o.snapshotConns()
	defer releaseConns(conns)
	var out []Timeline
	if a != nil {
		out = a.tls[:0]
	}
	out = slices.Grow(out, len(*conns))
	for _, c := range *conns {
		out = append(out, c.timeline(at, o.opts.StallThreshold, a))
	}
	return out
}

// timelineArena holds Verdict's timelines between uses, with their stalls
// and blocks in two shared slices: bp-client judges the run every second
// for its metrics (every connections/2000 s beyond 2,000), and at 19,000
// connections a fresh slice of timelines was 3.4 MB of garbage each time,
// their stalls copied one connection at a time another 18 MB, and the
// stalled connections' views (compute's) 8 MB. Compute
// keeps nothing of the timelines (what the Verdict holds of one, its
// path, is the timeline's own copy), so all of it can be used again.
type timelineArena struct {
	tls    []Timeline
	stalls []Stall
	blocks []Block
	views  []connView // compute's, of the stalled connections
}

// Verdict judges the run as it stands now (at its end, for the report).
func (o *Observer) Verdict(now time.Time) Verdict {
	p := Params{End: o.since(now), StallThreshold: o.opts.StallThreshold, KernelReason: o.opts.KernelReason}
	o.mu.Lock()
	p.StreamConnections = len(o.streamSockets)
	a := o.arena
	o.arena = nil
	o.mu.Unlock()
	if a == nil {
		a = new(timelineArena)
	}
	tls := o.timelinesInto(a, now)
	v, views := compute(tls, p, a.views)
	clear(tls) // no path or address held between uses
	clear(views)
	a.tls, a.stalls, a.blocks, a.views = tls[:0], a.stalls[:0], a.blocks[:0], views[:0]
	o.mu.Lock()
	o.arena = a
	o.mu.Unlock()
	return v
}

// Live says in a few words where the run stands, for the live display:
// "server reading", "server stalled 1.2 s ago, writes not blocked yet,
// 4.1 MB absorbed", "server stalled 3.0 s ago, writes blocked 2.9 s ago
// after 1.0 MB absorbed", "server resumed 0.5 s ago after a 4.0 s stall".
// It describes the last pass, so it lags by at most one interval.
func (o *Observer) Live(now time.Time) string {
	text, _ := o.LiveStalled(now)
	return text
}

// LiveStalled is Live's words and StalledNow's count from one walk over the
// connections: the live display wants both ten times a second.
func (o *Observer) LiveStalled(now time.Time) (text string, stalledNow int) {
	at := o.since(now)
	var open, stalled, blocked int
	var since, blockedSince, lastResume, lastStallLen time.Duration = -1, -1, -1, 0
	var absorbed, absorbedAtBlock int64
	conns := o.snapshotConns()
	defer releaseConns(conns)
	for _, c := range *conns {
		c.mu.Lock()
		if !c.closed {
			open++
		}
		if c.stallOpen && !c.closed {
			stalled++
			st := c.stalls[len(c.stalls)-1]
			if since < 0 || st.Since < since {
				since = st.Since
			}
			w := c.written.Load()
			absorbed += max(w-st.AckedBytes, 0) // a large write in progress: acks past the writes' count
			var blk *Block
			for i := range c.blocks {
				if c.blocks[i].Ended >= st.Since {
					blk = &c.blocks[i]
					break
				}
			}
			switch {
			case blk != nil:
				blocked++
				absorbedAtBlock += max(blk.WrittenBefore-st.AckedBytes, 0)
				if blockedSince < 0 || blk.Began < blockedSince {
					blockedSince = blk.Began
				}
			case c.stuck && at-c.stuckSince >= c.o.opts.StallThreshold:
				blocked++
				absorbedAtBlock += max(c.lastPassWritten-st.AckedBytes, 0)
				if blockedSince < 0 || c.stuckSince < blockedSince {
					blockedSince = c.stuckSince
				}
			}
		} else if n := len(c.stalls); n > 0 && c.stalls[n-1].Resumed && c.stalls[n-1].Until > lastResume {
			lastResume = c.stalls[n-1].Until
			lastStallLen = c.stalls[n-1].Until - c.stalls[n-1].Since
		}
		c.mu.Unlock()
	}
	if open == 0 && stalled == 0 {
		return "", 0
	}
	of := ""
	if open > 1 {
		of = fmt.Sprintf(" on %d/%d connections", stalled, open)
	}
	switch {
	case stalled > 0 && blocked == 0:
		return fmt.Sprintf("server stalled %s ago%s, writes not blocked yet, %s absorbed",
			seconds((at - since).Seconds()), of, config.HumanBytes(float64(absorbed))), stalled
	case stalled > 0:
		return fmt.Sprintf("server stalled %s ago%s, writes blocked %s ago after %s absorbed",
			seconds((at - since).Seconds()), of, seconds((at - blockedSince).Seconds()), config.HumanBytes(float64(absorbedAtBlock))), stalled
	case lastResume >= 0:
		return fmt.Sprintf("server resumed %s ago after a %s stall", seconds((at - lastResume).Seconds()), seconds(lastStallLen.Seconds())), stalled
	}
	return "server reading", stalled
}
