package flow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Plan says what one side of a connection does. The client builds it from
// its settings; the server builds it from the client's hello and its own
// read settings.
type Plan struct {
	// Write is set when this side sends payload.
	Write *WritePlan
	// Read paces the payload this side reads.
	Read ReadSettings
	// PeerWrites is set when the peer sends payload: this side then reads it,
	// acks it, and waits for the peer's fin.
	PeerWrites bool
	// AckInterval is how often acks are sent while payload arrives
	// (DefaultAckInterval when 0). A final ack always follows the peer's fin.
	AckInterval time.Duration
	// Initiator closes the connection once both directions are done (the
	// client). The other side waits for that close.
	Initiator bool
	// LingerTimeout bounds how long a side that is done waits for the peer to
	// close, or for the last acks (DefaultLingerTimeout when 0).
	LingerTimeout time.Duration
	// IdleTimeout ends the connection with ErrIdle when no byte moved either
	// way for this long while the reader waited for the peer and no write
	// was in progress: scheduled pauses, read delays and rate limits, and
	// writes blocked by backpressure never count (0: no idle timeout).
	IdleTimeout time.Duration
	// ControlWriteTimeout bounds each control write when this side writes
	// no payload (DefaultControlWriteTimeout when 0, negative: none).
	ControlWriteTimeout time.Duration
}

// WritePlan drives a writer.
type WritePlan struct {
	// Payload is written as is by every write call; it is generated once.
	Payload []byte
	// Payloads, when Payload is nil, lends the payload of PayloadSize bytes
	// for the run (and takes it back at its end); a pool without room
	// refuses the run with ErrPayloadMemory.
	Payloads    *PayloadPool
	PayloadSize int
	// Rate in messages per second; 0 writes as fast as the path allows.
	Rate float64
	// TotalBytes ends the run after this many payload bytes; 0: no bound.
	TotalBytes int64
	// Duration ends the run after this long; 0: no bound. A write that is
	// blocked when the time is up still completes.
	Duration time.Duration
	// StallThreshold is the blocked time from which a write counts as a stall.
	StallThreshold time.Duration
}

// Defaults for Plan.
const (
	DefaultAckInterval    = 100 * time.Millisecond
	DefaultLingerTimeout  = 30 * time.Second
	DefaultStallThreshold = 100 * time.Millisecond
)

// ErrDrainTimeout is returned when the peer did not acknowledge everything
// written within the linger timeout after the writer finished.
var ErrDrainTimeout = errors.New("peer did not acknowledge all bytes in time")

// ErrPeerClosed is returned when the peer closed the connection before the
// run ended.
var ErrPeerClosed = errors.New("peer closed the connection before the run ended")

// Session runs one connection for one side: its writer (if it writes), its
// reader (payload and control messages), and its ack timer.
type Session struct {
	conn  Conn
	plan  Plan
	obs   ConnObserver
	start time.Time

	written atomic.Int64
	// attempted includes the write in progress: a fast peer may read and
	// ack a message before the write call that sent it has returned.
	attempted atomic.Int64
	read      atomic.Int64
	acks      *AckTracker
	ackp      *ackPolicy    // when to ack (ackpolicy.go)
	writes    WriteObserver // nil observer unless the plan writes
	peerFin   atomic.Int64  // the peer's announced total, -1 before its fin
	paused    atomic.Bool

	finSent   atomic.Bool
	peerDone  chan struct{} // the peer finished writing and all of it was read
	closing   atomic.Bool   // this side closes the connection on purpose
	peerOnce  sync.Once
	closeOnce sync.Once // ClosingObserver.Closing, before the first close
	errOnce   sync.Once
	err       error
	failure   atomic.Pointer[error] // s.err, readable while the run goes on
	// ctx is the run's context (Run's, with cancelRun), for the timer
	// callbacks, which have no caller to pass it.
	ctx       context.Context
	cancelRun context.CancelFunc
	timers    callbacks   // the timers' callbacks, waited for by Run
	idleTimer *time.Timer // the idle watch (idlewatch.go), nil without one
	// inline: the reader runs in Run's own goroutine (a side that writes
	// no payload); then the reader itself ends the run once both
	// directions are done (peerFinished).
	inline      bool
	lingerTimer *time.Timer // inline, not the initiator: the linger bound
	// finished: both directions are done (no idle timeout from then on);
	// cleanEnd: and ctx had not ended by then.
	finished atomic.Bool
	cleanEnd atomic.Bool

	// ackMu orders the periodic acks before the final one: an ack after
	// the final ack could reach a peer that has closed already, which
	// answers it with a reset.
	ackMu sync.Mutex

	// Idle accounting: the last time a byte or message moved (or a pacer
	// wait ended), and what is on purpose not idle.
	lastActive atomic.Int64 // monotonic nanoseconds since start
	writing    atomic.Bool  // a payload write call is in progress
	pacing     atomic.Bool  // the reader waits for its pause, delay or rate
}

// NewSession prepares a session on conn. obs may be nil.
func NewSession(conn Conn, plan Plan, obs Observer) *Session {
	if obs == nil {
		obs = Nop{}
	}
	if plan.AckInterval <= 0 {
		plan.AckInterval = DefaultAckInterval
	}
	if plan.LingerTimeout <= 0 {
		plan.LingerTimeout = DefaultLingerTimeout
	}
	if plan.Write != nil && plan.Write.StallThreshold <= 0 {
		plan.Write.StallThreshold = DefaultStallThreshold
	}
	if plan.ControlWriteTimeout == 0 {
		plan.ControlWriteTimeout = DefaultControlWriteTimeout
	}
	s := &Session{
		conn:     conn,
		plan:     plan,
		obs:      obs.Open(connInfo(conn, plan)),
		start:    time.Now(),
		peerDone: make(chan struct{}),
		ackp:     newAckPolicy(),
	}
	s.acks = NewAckTracker(s.obs, s.tracksPipe())
	if plan.Write != nil {
		s.writes = NewWriteObserver(s.obs, plan.Write.StallThreshold, s.tracksPipe())
	}
	s.peerFin.Store(-1)
	s.touch()
	return s
}

// connInfo is what the observers learn of conn when its session opens.
func connInfo(conn Conn, plan Plan) ConnInfo {
	info := ConnInfo{Protocol: conn.Protocol(), Conn: conn.NetConn(), Writes: plan.Write != nil, Reads: plan.PeerWrites}
	if sc, ok := conn.(StreamConn); ok {
		info.Stream = sc
	}
	return info
}

// touch records activity now (idle accounting). It keeps the monotonic
// offset from start: time.Since reads one clock, where time.Now reads the
// wall clock too, and the reader and writer touch on every call.
func (s *Session) touch() { s.lastActive.Store(int64(time.Since(s.start))) }

// touchAt records activity at t, a time the caller read already.
func (s *Session) touchAt(t time.Time) { s.lastActive.Store(int64(t.Sub(s.start))) }

// Snapshot is a live view of a session, safe to take while it runs.
type Snapshot struct {
	Start   time.Time
	Written int64 // payload bytes this side wrote
	Read    int64 // payload bytes this side read
	Acked   int64 // payload bytes the peer acknowledged reading
	Paused  bool  // the reader is in a scheduled pause
	// PeerTotal is the peer's announced payload total (from its fin), or -1.
	PeerTotal int64
}

// InPipe is the bytes written but not yet acknowledged.
func (s Snapshot) InPipe() int64 { return s.Written - s.Acked }

// Snapshot returns the session's counters now.
func (s *Session) Snapshot() Snapshot {
	return Snapshot{
		Start:     s.start,
		Written:   s.written.Load(),
		Read:      s.read.Load(),
		Acked:     s.acks.Acked(),
		Paused:    s.paused.Load(),
		PeerTotal: s.peerFin.Load(),
	}
}

// Conn is the session's connection.
func (s *Session) Conn() Conn { return s.conn }

// tracksPipe: bytes in the pipe are only known when the peer sends acks.
func (s *Session) tracksPipe() bool { return s.conn.SpeaksControl() }

func (s *Session) fail(err error) {
	s.errOnce.Do(func() {
		s.err = err
		s.failure.Store(&err)
		s.cancelRun()
	})
}

// Run drives the connection until both directions are done, ctx ends, or
// something fails, and closes it. It returns the final counters and the
// first error; a run ended by ctx returns ctx's error.
func (s *Session) Run(ctx context.Context) (Snapshot, error) {
	ctx, cancel := context.WithCancel(ctx)
	s.ctx, s.cancelRun = ctx, cancel
	defer cancel()
	if release, err := s.lendPayload(); err != nil {
		s.fail(err) // refused: the close tells the peer why
	} else if release != nil {
		defer release()
	}
	// Closing the connection is what unblocks a read or write stuck in the
	// kernel when the run is cancelled.
	stopClose := context.AfterFunc(ctx, func() { s.closing.Store(true); s.beforeClose(); s.closeConn(ctx) })
	defer stopClose()

	var wg sync.WaitGroup
	s.timers.wg = &wg
	s.startIdleWatch()
	if s.plan.PeerWrites && s.conn.SpeaksControl() {
		// The first ack goes out one interval in even when nothing was
		// read yet: it tells the writer the back channel works, and
		// carries the via echo (docs/PROTOCOL.md).
		s.armAck()
	}
	done := s.runLoops(ctx, &wg)
	s.closing.Store(true)
	s.beforeClose()
	s.closeConn(ctx)
	cancel()
	s.timers.stop()
	wg.Wait()
	s.stopTimers()
	// Only now, with the reader gone, may a lingering close read on.
	_ = endClose(s.conn)

	s.acks.Drain(s.written.Load())
	err := s.result(ctx, done)
	s.obs.Closed(err)
	return s.Snapshot(), err
}

// stopTimers stops the run's timers once nothing can arm them again.
func (s *Session) stopTimers() {
	s.stopAck()
	for _, t := range []*time.Timer{s.idleTimer, s.lingerTimer} {
		if t != nil {
			t.Stop()
		}
	}
}

// lendPayload takes the writer's payload from the plan's pool, when it
// has one, and returns the function that gives it back.
func (s *Session) lendPayload() (func(), error) {
	wp := s.plan.Write
	if wp == nil || wp.Payload != nil || wp.Payloads == nil {
		return nil, nil
	}
	p, release, err := wp.Payloads.Get(wp.PayloadSize)
	if err != nil {
		return nil, err
	}
	w := *wp // the plan is the caller's: the lent payload is this run's
	w.Payload = p
	s.plan.Write = &w
	return release, nil
}

// runLoops runs the writer and the reader until both directions are done
// or ctx ends, and reports whether both were done. The writer, when this
// side writes, runs in this goroutine and the reader in one of its own;
// else the reader runs here: one goroutine per connection fewer, and the
// usual side of many slow connections (bp-server reading uploads) holds
// just this one.
func (s *Session) runLoops(ctx context.Context, wg *sync.WaitGroup) bool {
	if s.plan.Write == nil {
		s.inline = true
		if !s.plan.PeerWrites {
			s.peerFinished()
		}
		if s.plan.Initiator && isClosed(s.peerDone) {
			return s.cleanEnd.Load() // nothing to read: close now
		}
		if err := s.readLoop(ctx); err != nil {
			s.fail(err)
		}
		return s.cleanEnd.Load()
	}
	if !s.plan.PeerWrites {
		s.peerFinished()
	}
	readerDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(readerDone)
		if err := s.readLoop(ctx); err != nil {
			s.fail(err)
		}
	}()
	if err := s.writeLoop(ctx); err != nil {
		s.fail(err)
	}
	return s.waitDone(ctx, readerDone)
}

// peerFinished closes peerDone, once: the peer finished writing and all of
// it was read. Where the reader runs inline (no writer, so both directions
// are done now) it does what waitDone does for a side that writes: the
// idle watch ends, and a side that does not initiate the close waits for
// the initiator to close, bounded by the linger timeout.
func (s *Session) peerFinished() {
	s.peerOnce.Do(func() {
		close(s.peerDone)
		if !s.inline {
			return
		}
		s.finished.Store(true)
		s.cleanEnd.Store(s.ctx.Err() == nil)
		if !s.plan.Initiator && s.cleanEnd.Load() {
			s.lingerTimer = time.AfterFunc(s.plan.LingerTimeout, s.lingerUp)
		}
	})
}

// lingerUp ends an inline reader's wait for the initiator's close.
func (s *Session) lingerUp() {
	if !s.timers.enter() {
		return
	}
	defer s.timers.wg.Done()
	s.closing.Store(true)
	s.beforeClose()
	s.closeConn(s.ctx)
}

// waitDone waits until the peer is done too (this side's writer is) or ctx
// ends. Done, a side that does not initiate the close waits (bounded by
// the linger timeout) for the initiator to close, so it has read our last
// acks. It reports whether both directions were done.
func (s *Session) waitDone(ctx context.Context, readerDone <-chan struct{}) bool {
	select {
	case <-s.peerDone:
	case <-ctx.Done():
	}
	s.finished.Store(true)
	if ctx.Err() != nil {
		return false
	}
	if !s.plan.Initiator {
		t := time.NewTimer(s.plan.LingerTimeout)
		select {
		case <-readerDone:
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return true
}

// result is the run's error once it ended: none when both directions were
// done (but for a failure that was no cancellation), else the first
// failure, or ctx's error (its cause when it has one).
func (s *Session) result(ctx context.Context, done bool) error {
	err := s.err
	if done {
		err = nil
		if s.err != nil && !errors.Is(s.err, context.Canceled) {
			err = s.err
		}
	}
	if err == nil && !done {
		err = ctx.Err()
	}
	if errors.Is(err, context.Canceled) && s.err == nil {
		if pErr := context.Cause(ctx); pErr != nil {
			err = pErr
		}
	}
	return err
}

// writeLoop writes payload as the plan says, then sends a fin and waits
// until the peer has acknowledged every byte.
func (s *Session) writeLoop(ctx context.Context) error {
	wp := s.plan.Write
	if len(wp.Payload) == 0 {
		return errors.New("write plan has an empty payload")
	}
	wctx := ctx
	if wp.Duration > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(ctx, s.start.Add(wp.Duration))
		defer cancel()
	}
	defer s.boundWritesAfter(ctx, wctx)()
	var limiter *rateWait
	if wp.Rate > 0 {
		limiter = newRateWait(wp.Rate)
		defer limiter.stop()
	}
	var written int64
	for wctx.Err() == nil {
		p := wp.Payload
		if wp.TotalBytes > 0 {
			left := wp.TotalBytes - written
			if left <= 0 {
				break
			}
			if left < int64(len(p)) {
				p = p[:left]
			}
		}
		if limiter != nil {
			s.writing.Store(true) // waiting for its own rate: on purpose
			err := limiter.wait(wctx)
			s.writing.Store(false)
			if err != nil {
				break // the run's time is up (or ctx ended, checked below)
			}
		}
		s.attempted.Store(written + int64(len(p)))
		began := s.writes.Begin()
		s.writing.Store(true)
		n, err := s.conn.WritePayload(p)
		s.writing.Store(false)
		s.touchAt(s.writes.End(began, n))
		if n > 0 {
			written += int64(n)
			s.written.Store(written)
		}
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			if nd := s.notDrained(err, written); nd != nil {
				return nd
			}
			return fmt.Errorf("write: %w", err)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return s.finish(ctx, written)
}

// finish sends the fin for written bytes and waits (bounded by the linger
// timeout) until the peer has acknowledged them all; a hello-less peer
// gets neither.
func (s *Session) finish(ctx context.Context, written int64) error {
	if !s.conn.SpeaksControl() {
		return nil
	}
	s.finSent.Store(true)
	if err := s.writeControl(Control{Type: Fin, Bytes: written}); err != nil {
		if nd := s.notDrained(err, written); nd != nil {
			return nd
		}
		return fmt.Errorf("send fin: %w", err)
	}
	wait := s.plan.LingerTimeout
	if d := s.drainDeadline(); !d.IsZero() {
		wait = min(wait, max(time.Until(d), 0)) // one budget from the end of the run
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for s.acks.Acked() < written {
		select {
		case <-s.acks.Changed():
		case <-ctx.Done():
			return nil
		case <-t.C:
			return fmt.Errorf("%w: %d of %d bytes acknowledged after %s", ErrDrainTimeout, s.acks.Acked(), written, wait)
		}
	}
	return nil
}

// readLoop reads payload at the plan's pace and handles control messages.
func (s *Session) readLoop(ctx context.Context) error {
	size := s.plan.Read.Size
	if !s.plan.PeerWrites && s.conn.SpeaksControl() {
		// Only control messages may come (read into the connection's own
		// buffer): any payload byte is refused, so a byte of buffer is
		// as good as 4 KiB, which every uploading client held per
		// connection.
		size = controlOnlyReadSize
	}
	buf := newReadBuffer(size) // small until reads fill it
	defer buf.release()
	pace := newPacer(s.plan.Read, s.start, pausedObserver{s})
	for {
		if s.plan.PeerWrites && pace.pauses() {
			s.pacing.Store(true)
			err := pace.beforeRead(ctx)
			s.pacing.Store(false)
			s.touch()
			if err != nil {
				return nil // ctx ended: Run reports it
			}
		}
		n, ctl, err := s.conn.Read(buf.next())
		buf.used(n)
		if n > 0 || ctl.Type != "" {
			s.touch()
		}
		if n > 0 {
			if perr := s.checkPayload(); perr != nil {
				return perr
			}
			total := s.read.Add(int64(n))
			s.obs.Read(n)
			if aerr := s.ackByBytes(total); aerr != nil {
				return aerr
			}
			if pace.slows() {
				s.pacing.Store(true)
				perr := pace.afterRead(ctx, n)
				s.pacing.Store(false)
				s.touch()
				if perr != nil {
					return nil
				}
			}
		}
		if ctl.Type != "" {
			if cerr := s.handleControl(ctl); cerr != nil {
				if s.closing.Load() || ctx.Err() != nil {
					return nil // an ack that can no longer go out
				}
				return cerr
			}
			if s.inline && s.plan.Initiator && isClosed(s.peerDone) {
				return nil // both directions done: the initiator closes now
			}
		}
		if err == nil {
			continue
		}
		if s.closing.Load() || ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, io.EOF) {
			if !s.conn.SpeaksControl() {
				// A hello-less peer ends its stream by closing it.
				s.peerFinished()
				return nil
			}
			select {
			case <-s.peerDone:
				if s.plan.Write == nil || (s.finSent.Load() && s.acks.Acked() >= s.written.Load()) {
					return nil // everything said and acknowledged: a clean end
				}
			default:
			}
			return ErrPeerClosed
		}
		if IsReset(err) && s.conn.SpeaksControl() && isClosed(s.peerDone) &&
			(s.plan.Write == nil || (s.finSent.Load() && s.acks.Acked() >= s.written.Load())) {
			// Everything said and acknowledged: a peer that closes with
			// bytes of ours unread (an ack it no longer needed) resets
			// the connection, which ends it as cleanly as a close.
			return nil
		}
		return fmt.Errorf("read: %w", err)
	}
}

// checkPayload refuses payload a peer that speaks the protocol may not
// send: when it was not to write (the other direction's run), or after its
// fin.
func (s *Session) checkPayload() error {
	if !s.conn.SpeaksControl() {
		return nil // a hello-less peer's bytes are all payload
	}
	if !s.plan.PeerWrites {
		return protocolErrorf("peer sent payload, but it was not to write (direction)")
	}
	if fin := s.peerFin.Load(); fin >= 0 {
		return protocolErrorf("peer sent payload after its fin of %d bytes", fin)
	}
	return nil
}

// handleControl checks and applies one control message: an ack within
// what was written and never below the last one, one fin from a peer
// that writes, matching what arrived.
func (s *Session) handleControl(ctl Control) error {
	switch ctl.Type {
	case Ack:
		if ctl.Bytes > s.attempted.Load() {
			return protocolErrorf("peer acknowledged %d bytes, only %d written", ctl.Bytes, s.attempted.Load())
		}
		if last := s.acks.Acked(); ctl.Bytes < last {
			return protocolErrorf("peer acknowledged %d bytes after %d: acks go backwards", ctl.Bytes, last)
		}
		s.acks.Ack(ctl.Bytes)
		notePath(s.obs, ctl)
	case Fin:
		if !s.plan.PeerWrites {
			return protocolErrorf("peer sent a fin, but it was not to write")
		}
		if prev := s.peerFin.Load(); prev >= 0 {
			return protocolErrorf("peer sent a second fin (%d bytes, after %d)", ctl.Bytes, prev)
		}
		if got := s.read.Load(); got != ctl.Bytes {
			return protocolErrorf("peer wrote %d bytes, %d arrived", ctl.Bytes, got)
		}
		s.peerFin.Store(ctl.Bytes)
		// The final ack goes out before the peer counts as done, so the
		// initiator never closes ahead of it, and is the last ack.
		s.ackMu.Lock()
		err := s.writeControl(s.ack(ctl.Bytes))
		if err == nil {
			s.peerFinished()
		}
		s.ackMu.Unlock()
		if err != nil {
			return fmt.Errorf("send final ack: %w", err)
		}
	}
	return nil
}

// writeControl sends a control message, within the control write timeout
// when this side writes no payload (see DefaultControlWriteTimeout).
func (s *Session) writeControl(ctl Control) error {
	wd, ok := s.conn.(writeDeadliner)
	if s.plan.Write != nil || s.plan.ControlWriteTimeout <= 0 || !ok || !s.conn.SpeaksControl() {
		return s.conn.WriteControl(ctl)
	}
	_ = wd.setWriteDeadline(time.Now().Add(s.plan.ControlWriteTimeout))
	err := s.conn.WriteControl(ctl)
	if err == nil {
		_ = wd.setWriteDeadline(time.Time{})
		s.touch()
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		err = fmt.Errorf("peer did not read its acks for %s: %w", s.plan.ControlWriteTimeout, err)
	}
	return err
}

// closeConn starts closing the connection as the run's end calls for:
// after a failure with its reason (WebSocket close code), at shutdown as
// going away. It makes a read or write blocked on the peer return; Run
// finishes the close (endClose) once its goroutines have.
func (s *Session) closeConn(ctx context.Context) {
	var err error
	if p := s.failure.Load(); p != nil {
		err = *p
	} else if ctx.Err() != nil {
		err = context.Canceled
	}
	beginClose(s.conn, err)
}

// beforeClose tells the observer, once, that the connection is about to be
// closed, so it can read the socket a last time (kernel statistics).
func (s *Session) beforeClose() {
	s.closeOnce.Do(func() {
		if c, ok := s.obs.(ClosingObserver); ok {
			c.Closing()
		}
	})
}

// pausedObserver keeps the session's paused flag in step with the pacer.
type pausedObserver struct{ s *Session }

func (p pausedObserver) Paused(paused bool, d time.Duration) {
	p.s.paused.Store(paused)
	p.s.obs.Paused(paused, d)
}
func (p pausedObserver) Throttled(d time.Duration) { p.s.obs.Throttled(d) }

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
