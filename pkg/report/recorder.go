package report

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// Recorder is a flow.Observer that keeps run totals for the report and the
// live display.
type Recorder struct {
	written, read, acked atomic.Int64
	writes, stalls       atomic.Int64
	blockedNs, longestNs atomic.Int64
	inPipe, peakInPipe   atomic.Int64
	opened, open, failed atomic.Int64
	pausedNs             atomic.Int64
	reconnects           atomic.Int64
	notConnected         atomic.Int64
	mu                   sync.Mutex
	// histMu guards hist alone: every write records into it, and under
	// mu the live display walks every open connection (Totals,
	// walkLive), which with 19,000 connections held each write's
	// recording for the walk's length: a convoy of writers behind every
	// walk, and the scrape that came during it waited for the CPU they
	// took (mutex profile of bp-client: 50% of the delay in Wrote, 26% in
	// the walk).
	histMu       sync.Mutex
	hist         *hdrhistogram.Histogram
	kernel       KernelSource          // the kernel's view, if known (SetKernel)
	kernelBase   sockstat.Totals       // the kernel's counters at SetKernel
	streams      StreamSource          // the stream layer, if known (SetStreams)
	streamBase   sockstat.StreamTotals // its counters at SetStreams
	streamsSince time.Time             // when SetStreams was called
	verdict      *verdict.Observer     // the verdict's timelines, if kept (SetVerdict)
	live         map[*recConn]struct{} // open connections, under mu
	byStream     map[int]*streamTally  // streams' figures by their index on a connection, under mu
	timeline     *timeline             // the run's samples, if kept (KeepTimeline), under mu
}

var _ flow.Observer = (*Recorder)(nil)

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	// 1 µs .. 1 h at 3 significant digits.
	return &Recorder{hist: hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3)}
}

// Open implements flow.Observer.
func (r *Recorder) Open(info flow.ConnInfo) flow.ConnObserver {
	r.opened.Add(1)
	r.open.Add(1)
	c := &recConn{r: r}
	c.lastAck.Store(time.Now().UnixNano())
	r.mu.Lock()
	if r.live == nil {
		r.live = map[*recConn]struct{}{}
	}
	r.live[c] = struct{}{}
	if info.Stream != nil {
		c.tally = r.tallyOf(info.Stream.StreamIndex())
	}
	r.mu.Unlock()
	return c
}

// recConn is one connection's share of the recorder.
type recConn struct {
	r *Recorder
	// clock is the write in progress, if any: it lets the live display
	// count a write while it is blocked, not only once it returns.
	clock flow.WriteClock
	// lastAck is when the peer's last ack arrived (unix nanoseconds), and
	// sinceAck the most in the pipe since: see InPipe.
	lastAck, sinceAck atomic.Int64
	// tally is the figures of the streams at this one's index (nil when
	// the connection is not a stream): see StreamGroups.
	tally *streamTally
}

// ackFresh is how long after an ack the bytes in the pipe still follow
// the acks rather than the writes: see recConn.InPipe.
const ackFresh = 3 * flow.DefaultAckInterval / 2

var _ flow.WriteStartObserver = (*recConn)(nil)

// WriteStarting implements flow.WriteStartObserver.
func (c *recConn) WriteStarting(t time.Time) { c.clock.Start(t) }

func (c *recConn) Wrote(n int, blocked time.Duration, stalled bool) {
	c.clock.Stop()
	r := c.r
	r.written.Add(int64(n))
	r.writes.Add(1)
	r.blockedNs.Add(int64(blocked))
	if stalled {
		r.stalls.Add(1)
		r.raisePeak(r.inPipe.Load()) // no progress: what is in the pipe is real
	}
	for {
		old := r.longestNs.Load()
		if int64(blocked) <= old || r.longestNs.CompareAndSwap(old, int64(blocked)) {
			break
		}
	}
	c.tally.wrote(blocked, stalled)
	r.histMu.Lock()
	_ = r.hist.RecordValue(max(blocked.Microseconds(), 1))
	r.histMu.Unlock()
}

func (c *recConn) Read(n int) { c.r.read.Add(int64(n)) }

func (c *recConn) Acked(d int64) {
	c.r.acked.Add(d)
	c.tally.ack(d)
}

// InPipe keeps the bytes in the pipe and their peak. Between two acks the
// figure grows with every write by what the reader has in fact read since
// the last ack: at 1.5 GB/s, 15 MB for every 10 ms an ack is late. So
// between acks the most seen is kept aside (sinceAck), and it counts
// towards the peak only once acks are known to have stopped moving: the
// next ack came ackFresh or more after the last one, or none has come for
// that long (the reader stopped: the growth is real). When an ack arrives
// the figure is as fresh as it gets, and counts at once; so does a write
// that stalls (from Wrote). What it leaves out is the growth between two
// acks less than ackFresh apart, which is mostly the acks' age.
func (c *recConn) InPipe(d int64) {
	now := c.r.inPipe.Add(d)
	t := time.Now().UnixNano()
	stale := t-c.lastAck.Load() >= int64(ackFresh)
	if d > 0 {
		raiseMax(&c.sinceAck, now)
		if stale {
			c.r.raisePeak(now)
		}
		return
	}
	if stale {
		c.r.raisePeak(c.sinceAck.Load()) // the stall that just ended was real
	}
	c.lastAck.Store(t)
	c.sinceAck.Store(now)
	c.r.raisePeak(now)
}

// commitIfStale counts the most in the pipe since the last ack towards the
// peak when acks have stopped moving: a connection read now (live, or at
// its end) in the middle of a stall.
func (c *recConn) commitIfStale() { c.commitIfStaleAt(time.Now().UnixNano()) }

// commitIfStaleAt is commitIfStale at now (Unix nanoseconds).
func (c *recConn) commitIfStaleAt(now int64) {
	if now-c.lastAck.Load() >= int64(ackFresh) {
		c.r.raisePeak(c.sinceAck.Load())
	}
}

// raiseMax makes v the value of m if it is higher.
func raiseMax(m *atomic.Int64, v int64) {
	for {
		old := m.Load()
		if v <= old || m.CompareAndSwap(old, v) {
			return
		}
	}
}

// raisePeak makes now the peak in the pipe if it is higher.
func (r *Recorder) raisePeak(now int64) { raiseMax(&r.peakInPipe, now) }

func (c *recConn) Paused(paused bool, stopped time.Duration) {
	if !paused {
		c.r.pausedNs.Add(int64(stopped))
	}
}

func (c *recConn) Throttled(time.Duration) {}

func (c *recConn) Closed(err error) {
	c.commitIfStale()
	c.r.mu.Lock()
	delete(c.r.live, c)
	c.r.mu.Unlock()
	c.r.open.Add(-1)
	if err != nil {
		c.r.failed.Add(1)
	}
}

// NotConnected counts a connection attempt that failed before it opened
// (the connect, the TLS or WebSocket handshake, the hello, or a stream's
// open): no observer ever heard of it, yet it is a failed connection.
func (r *Recorder) NotConnected() {
	r.notConnected.Add(1)
	r.failed.Add(1)
}

// Reconnected counts an attempt to connect again after a connection broke
// or could not be made (bp-client --reconnect).
func (r *Recorder) Reconnected() { r.reconnects.Add(1) }

// Totals is a moment's view of a run, for the live display.
type Totals struct {
	Written, Read, Acked int64
	Writes, Stalls       int64
	Blocked              time.Duration
	InPipe, PeakInPipe   int64
	Open                 int64
	// Kernel is the kernel's view of the sockets during the run (see
	// SetKernel), nil when not known.
	Kernel *sockstat.Totals
	// Verdict says in a few words whether the server stopped and what the
	// path absorbed ("" when no verdict is kept).
	Verdict string
	// Stalled is the connections whose server seems stopped now (acks
	// stood still with bytes waiting); -1 when no verdict is kept. Writes
	// blocked while it is 0 wait on a path that keeps flowing.
	Stalled int
}

// Totals reads the counters now.
func (r *Recorder) Totals() Totals {
	blocked := r.walkLive()
	live, stalled := r.liveVerdict()
	return Totals{
		Kernel:  r.kernelNow(),
		Written: r.written.Load(), Read: r.read.Load(), Acked: r.acked.Load(),
		Writes: r.writes.Load(), Stalls: r.stalls.Load(),
		Blocked: time.Duration(r.blockedNs.Load()) + blocked,
		InPipe:  r.inPipe.Load(), PeakInPipe: r.peakInPipe.Load(),
		Open: r.open.Load(), Verdict: live, Stalled: stalled,
	}
}

// walkLive counts every open connection's bytes in the pipe since its last
// ack towards the peak, if its acks stopped (commitIfStale), and returns
// the time its write in progress, if any, has been blocked so far. One
// walk at one clock reading: Totals runs ten times a second, and at 19,000
// connections each walk over them was 2% of a slow client's CPU.
func (r *Recorder) walkLive() (blocked time.Duration) {
	now := time.Now()
	unix := now.UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.live {
		c.commitIfStaleAt(unix)
		if elapsed, ok := c.clock.Elapsed(now); ok {
			blocked += elapsed
		}
	}
	return blocked
}

// quantile returns the q-th percentile of write-blocked time.
func (r *Recorder) quantile(q float64) time.Duration {
	r.histMu.Lock()
	defer r.histMu.Unlock()
	if r.hist.TotalCount() == 0 {
		return 0
	}
	return time.Duration(r.hist.ValueAtQuantile(q)) * time.Microsecond
}
