package flow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A relay joins a downstream connection (accepted) and an upstream one
// (dialled), one pipe per direction:
//
//	downstream.Read -> [up buffer]   -> upstream.WritePayload      (Up)
//	downstream.WritePayload   <- [down buffer] <- upstream.Read    (Down)
//	acks: read on one side, written unchanged on the other
//
// Each pipe has a reader goroutine that stops reading when its buffer is
// full, so the relay passes backpressure on instead of absorbing it without
// bound, and a writer goroutine that writes what the buffer holds.
//
// A pipe whose buffer holds a single read (stream mode) has no writer
// goroutine: its reader writes each read itself before it reads again, as
// socat does. The buffer semantics are the same (at most one read's worth
// held, no reading while the write blocks), without two goroutine hand-offs
// per read.

// StreamBufferSize is a pipe's buffer in stream mode (RelayConfig.Buffer 0):
// one read's worth, so the relay stops reading as soon as its upstream
// write blocks.
const StreamBufferSize = 64 << 10

// relayBlockSize is the unit the buffers hold bytes in: a buffer of N bytes
// uses at most N rounded up to blocks, whatever the size of the reads.
const relayBlockSize = 64 << 10

// Side names one of a relay's two connections.
type Side string

// The sides of a relay.
const (
	Downstream Side = "downstream" // towards the client: accepted
	Upstream   Side = "upstream"   // towards the server: dialled
)

// RelayConfig says how a relay forwards. The zero value is a stream relay
// with no memory cap beyond its per-connection buffers.
type RelayConfig struct {
	// Name is appended to the hello's Via list on its way upstream.
	Name string
	// Buffer is the bytes each direction of a connection may hold; 0 is
	// stream mode (StreamBufferSize).
	Buffer int
	// ReadSize is the most bytes one read asks for (DefaultReadSize when 0,
	// at most Buffer).
	ReadSize int
	// Budget caps the bytes all connections sharing it hold together; nil
	// is no cap beyond Buffer.
	Budget *RelayBudget
	// StallThreshold is the blocked time from which a write counts as a
	// stall (DefaultStallThreshold when 0).
	StallThreshold time.Duration
	// LingerTimeout bounds the wait for the last fins and acks once one side
	// has ended (DefaultLingerTimeout when 0).
	LingerTimeout time.Duration
	// DialTimeout bounds dialling upstream (10 s when 0).
	DialTimeout time.Duration
	// Observer gets both connections' events, as for any other binary.
	Observer Observer
	// Buffers gets the relay's own events: buffer fill, pauses, failures.
	Buffers RelayObserver
}

// UpstreamDialer connects upstream and sends hello first; hello is nil for
// a raw (hello-less) connection.
type UpstreamDialer func(ctx context.Context, hello *Hello) (Conn, error)

// RelayObserver receives what a relay's buffers do. pkg/metrics implements
// it; implementations must be safe for concurrent use.
type RelayObserver interface {
	// Buffered is called with every change of the payload bytes a
	// direction's buffers hold (read, not yet accepted by the writer).
	Buffered(dir Direction, delta int64)
	// Capacity is called with +capacity when a connection's buffer opens
	// and -capacity when it closes.
	Capacity(dir Direction, delta int64)
	// ReadingPaused is called when a reader stops because its buffer (or
	// the shared budget) is full, paused = true, and when it resumes, with
	// the time it was stopped.
	ReadingPaused(dir Direction, paused bool, stopped time.Duration)
	// Failed is called once for every relayed connection that ended with an
	// error, with the side whose connection failed.
	Failed(side Side, err error)
}

// NopRelay is a RelayObserver that ignores everything.
type NopRelay struct{}

var _ RelayObserver = NopRelay{}

func (NopRelay) Buffered(Direction, int64)                    {}
func (NopRelay) Capacity(Direction, int64)                    {}
func (NopRelay) ReadingPaused(Direction, bool, time.Duration) {}
func (NopRelay) Failed(Side, error)                           {}

// RelayBudget is a memory cap shared by every buffer of a relay process:
// a reader reserves room before it reads, and waits (paused, counted) when
// the budget is used up, so many connections cannot add up past it.
type RelayBudget struct {
	mu      sync.Mutex
	max     int64
	used    int64
	changed chan struct{} // closed on the next release; nil until someone waits
}

// NewRelayBudget returns a budget of max bytes.
func NewRelayBudget(max int64) *RelayBudget { return &RelayBudget{max: max} }

// Max is the budget's size.
func (b *RelayBudget) Max() int64 { return b.max }

// Used is the bytes reserved now.
func (b *RelayBudget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// reserve takes n bytes, or returns a channel closed when bytes are given
// back.
func (b *RelayBudget) reserve(n int64) (bool, <-chan struct{}) {
	if b == nil {
		return true, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n <= b.max {
		b.used += n
		return true, nil
	}
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return false, b.changed
}

func (b *RelayBudget) release(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	b.mu.Unlock()
}

// Relay forwards connections upstream, one Serve call per downstream
// connection. It is safe for concurrent use.
type Relay struct {
	cfg  RelayConfig
	dial UpstreamDialer
}

// NewRelay returns a relay that dials upstream with dial.
func NewRelay(cfg RelayConfig, dial UpstreamDialer) *Relay {
	if cfg.Buffer <= 0 {
		cfg.Buffer = StreamBufferSize
	}
	if cfg.ReadSize <= 0 {
		cfg.ReadSize = DefaultReadSize
	}
	cfg.ReadSize = min(cfg.ReadSize, cfg.Buffer, MaxPayloadSize)
	if cfg.Budget != nil {
		cfg.ReadSize = int(min(int64(cfg.ReadSize), cfg.Budget.max))
	}
	if cfg.StallThreshold <= 0 {
		cfg.StallThreshold = DefaultStallThreshold
	}
	if cfg.LingerTimeout <= 0 {
		cfg.LingerTimeout = DefaultLingerTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Observer == nil {
		cfg.Observer = Nop{}
	}
	if cfg.Buffers == nil {
		cfg.Buffers = NopRelay{}
	}
	return &Relay{cfg: cfg, dial: dial}
}

// PipeStats counts one direction of a relayed connection.
type PipeStats struct {
	Read    int64 // payload bytes read from the source side
	Written int64 // payload bytes the destination side accepted
}

// RelayStats is what one relayed connection carried.
type RelayStats struct {
	// Hello is the hello sent upstream (with this relay in Via); nil for a
	// raw connection.
	Hello *Hello
	Up    PipeStats // downstream to upstream
	Down  PipeStats // upstream to downstream
}

// Forward returns the hello to send upstream: h with name appended to Via,
// as an HTTP proxy appends itself to the Via header.
func (h Hello) Forward(name string) Hello {
	h.Via = append(slices.Clone(h.Via), name)
	return h
}

// Serve relays down, whose hello (nil: hello-less) was already read, to a
// newly dialled upstream until the run ends, either side fails, or ctx
// ends, and closes both. A hello-less or legacy downstream is relayed raw:
// every byte is payload in both directions and an end of stream on one
// side is passed on as a half-close. On an upstream failure the downstream
// connection is closed so that its peer sees an error.
func (r *Relay) Serve(ctx context.Context, down Conn, hello *Hello) (RelayStats, error) {
	raw := hello == nil || hello.Legacy || !down.SpeaksControl()
	dir := Both
	if !raw {
		dir = hello.Direction
		if dir == "" {
			dir = Up
		}
	}
	var stats RelayStats
	downObs := r.cfg.Observer.Open(ConnInfo{Protocol: down.Protocol(), Conn: down.NetConn(),
		Writes: dir.ServerWrites(), Reads: dir.ClientWrites()})
	var fwd *Hello
	if !raw {
		h := hello.Forward(r.cfg.Name)
		fwd = &h
		stats.Hello = fwd
	}
	dctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	up, err := r.dial(dctx, fwd)
	cancel()
	if err != nil {
		err = fmt.Errorf("dial upstream: %w", err)
		abortConn(down, err.Error())
		downObs.Closed(err)
		r.cfg.Buffers.Failed(Upstream, err)
		return stats, err
	}
	upObs := r.cfg.Observer.Open(ConnInfo{Protocol: up.Protocol(), Conn: up.NetConn(),
		Writes: dir.ClientWrites(), Reads: dir.ServerWrites()})
	s := &relaySession{
		cfg: &r.cfg, raw: raw, dir: dir,
		down: relaySide{side: Downstream, conn: down, obs: downObs, eof: make(chan struct{}), ackPoke: make(chan struct{}, 1)},
		up:   relaySide{side: Upstream, conn: up, obs: upObs, eof: make(chan struct{}), ackPoke: make(chan struct{}, 1)},
	}
	s.upPipe = newRelayPipe(Up, &r.cfg)
	s.downPipe = newRelayPipe(Down, &r.cfg)
	err = s.run(ctx)
	stats.Up = PipeStats{Read: s.upPipe.read.Load(), Written: s.upPipe.written.Load()}
	stats.Down = PipeStats{Read: s.downPipe.read.Load(), Written: s.downPipe.written.Load()}
	return stats, err
}

// relaySide is one of a relayed connection's two connections.
type relaySide struct {
	side    Side
	conn    Conn
	obs     ConnObserver
	acked   atomic.Int64  // the latest ack this side's peer sent (cumulative)
	ackPoke chan struct{} // an ack arrived
	eof     chan struct{} // closed when a framed peer closed the connection
	eofOnce sync.Once
}

// relaySession is one relayed connection.
type relaySession struct {
	cfg              *RelayConfig
	raw              bool
	dir              Direction
	down, up         relaySide
	upPipe, downPipe *relayPipe

	closing  atomic.Bool
	failOnce sync.Once
	failSide Side
	failErr  error
	cancel   context.CancelFunc
}

func (s *relaySession) fail(side Side, err error) {
	s.failOnce.Do(func() {
		s.failSide, s.failErr = side, err
		s.cancel()
	})
}

// failure is the first failure, safe to read once the run's context ended.
func (s *relaySession) failure() (Side, error) {
	var side Side
	var err error
	s.failOnce.Do(func() {}) // no failure from now on: closing is on purpose
	side, err = s.failSide, s.failErr
	return side, err
}

func (s *relaySession) run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.cancel = cancel
	for _, p := range []*relayPipe{s.upPipe, s.downPipe} {
		s.cfg.Buffers.Capacity(p.dir, int64(p.capacity))
	}

	var wg sync.WaitGroup
	start := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	start(func() { s.readLoop(runCtx, &s.down, &s.up, s.upPipe) })
	start(func() { s.readLoop(runCtx, &s.up, &s.down, s.downPipe) })
	for _, pw := range []struct {
		pipe *relayPipe
		dst  *relaySide
	}{{s.upPipe, &s.up}, {s.downPipe, &s.down}} {
		if !pw.pipe.direct {
			start(func() { s.writeLoop(runCtx, pw.pipe, pw.dst) })
		}
	}

	upDone, downDone := s.upPipe.done, s.downPipe.done
	downEOF, upEOF := s.down.eof, s.up.eof
	var lingerC <-chan time.Time
	var linger *time.Timer
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	startLinger := func() {
		if linger == nil {
			linger = time.NewTimer(s.cfg.LingerTimeout)
			lingerC = linger.C
		}
	}
	clean := false
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case <-upDone:
			upDone = nil
			if s.raw {
				if downDone == nil {
					clean = true
					break loop
				}
				startLinger()
			}
		case <-downDone:
			downDone = nil
			if s.raw {
				if upDone == nil {
					clean = true
					break loop
				}
				startLinger()
			}
		case <-downEOF:
			// The client closes once its run is done; what it sent before
			// closing still has to drain upstream.
			if side, err := s.finishAfterDownstream(runCtx); err != nil {
				s.fail(side, err)
				break loop
			}
			clean = true
			break loop
		case <-upEOF:
			upEOF = nil
			if !s.complete() {
				s.fail(Upstream, fmt.Errorf("upstream: %w", ErrPeerClosed))
				break loop
			}
			startLinger() // everything was said: wait for the client to close
		case <-lingerC:
			clean = s.raw || s.complete()
			if !clean {
				s.fail(Downstream, fmt.Errorf("%w: run not finished after %s", ErrDrainTimeout, s.cfg.LingerTimeout))
			}
			break loop
		}
	}

	s.closing.Store(true)
	failSide, failErr := s.failure()
	// A last look at both sockets (kernel statistics) while they are open.
	for _, o := range []ConnObserver{s.down.obs, s.up.obs} {
		if c, ok := o.(ClosingObserver); ok {
			c.Closing()
		}
	}
	var err error
	switch {
	case failErr != nil:
		err = failErr
		abortConn(s.down.conn, string(failSide)+" failed: "+failErr.Error())
		if failSide == Downstream {
			abortConn(s.up.conn, "downstream failed: "+failErr.Error())
		} else {
			s.up.conn.Close()
		}
	case clean:
		s.up.conn.Close()
		s.down.conn.Close()
	default: // ctx ended: shutdown
		err = ctx.Err()
		s.up.conn.Close()
		s.down.conn.Close()
	}
	cancel()
	wg.Wait()

	for _, p := range []*relayPipe{s.upPipe, s.downPipe} {
		p.drop()
		s.cfg.Buffers.Capacity(p.dir, -int64(p.capacity))
	}
	// Bytes this relay wrote that the peers never acknowledged leave the
	// in-pipe gauge with the connection.
	for _, sd := range []struct {
		side *relaySide
		pipe *relayPipe
	}{{&s.up, s.upPipe}, {&s.down, s.downPipe}} {
		if sd.side.conn.SpeaksControl() {
			if rest := sd.pipe.written.Load() - sd.side.acked.Load(); rest != 0 {
				sd.side.obs.InPipe(-rest)
			}
		}
	}
	s.down.obs.Closed(err)
	s.up.obs.Closed(err)
	if failErr != nil {
		s.cfg.Buffers.Failed(failSide, failErr)
	}
	return err
}

// complete reports whether every direction the hello announced has ended
// with its writer's fin.
func (s *relaySession) complete() bool {
	if s.dir.ClientWrites() && !s.upPipe.hasEnded() {
		return false
	}
	if s.dir.ServerWrites() && !s.downPipe.hasEnded() {
		return false
	}
	return true
}

// finishAfterDownstream runs when a framed client closed: the run must be
// complete, and the relay waits (bounded by the linger timeout) until the
// fins it holds reached upstream and upstream acknowledged the last byte,
// as the client itself would, so upstream ends cleanly.
func (s *relaySession) finishAfterDownstream(ctx context.Context) (Side, error) {
	if !s.complete() {
		return Downstream, fmt.Errorf("downstream: %w", ErrPeerClosed)
	}
	t := time.NewTimer(s.cfg.LingerTimeout)
	defer t.Stop()
	for _, p := range []*relayPipe{s.upPipe, s.downPipe} {
		if !p.hasEnded() {
			continue
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return "", nil
		case <-t.C:
			return Upstream, fmt.Errorf("%w: the %s fin was not forwarded within %s", ErrDrainTimeout, p.dir, s.cfg.LingerTimeout)
		}
	}
	if fin, ok := s.upPipe.fin(); ok && s.up.conn.SpeaksControl() {
		for s.up.acked.Load() < fin {
			select {
			case <-s.up.ackPoke:
			case <-s.up.eof:
				return "", nil // upstream is gone too; it had the fin
			case <-ctx.Done():
				return "", nil
			case <-t.C:
				return Upstream, fmt.Errorf("%w: upstream acknowledged %d of %d bytes", ErrDrainTimeout, s.up.acked.Load(), fin)
			}
		}
	}
	return "", nil
}

// readLoop reads from src into p (payload) and handles src's control
// messages: acks go to dst unchanged, a fin ends p after its bytes.
func (s *relaySession) readLoop(ctx context.Context, src, dst *relaySide, p *relayPipe) {
	if p.direct && !s.raw {
		if pt := newPassthrough(src.conn, dst.conn); pt != nil {
			s.passthroughLoop(ctx, src, dst, p, pt)
			return
		}
	}
	buf := make([]byte, p.chunk)
	for {
		if err := p.waitRoom(ctx); err != nil {
			return
		}
		n, ctl, err := src.conn.Read(buf)
		p.reserved(n)
		if n > 0 {
			p.read.Add(int64(n))
			src.obs.Read(n)
			if p.direct {
				if !s.writeDirect(p, dst, buf[:n]) {
					return
				}
			} else {
				p.push(buf[:n])
			}
		}
		if ctl.Type != "" {
			if cerr := s.handleControl(src, dst, p, ctl); cerr != nil {
				s.fail(src.side, cerr)
				return
			}
			if p.direct && ctl.Type == Fin {
				s.passEnd(p, dst)
			}
		}
		if err == nil {
			continue
		}
		s.readEnded(ctx, src, dst, p, err)
		return
	}
}

// readEnded handles the error that ended src's reading.
func (s *relaySession) readEnded(ctx context.Context, src, dst *relaySide, p *relayPipe, err error) {
	if s.closing.Load() || ctx.Err() != nil {
		return
	}
	if errors.Is(err, io.EOF) || (!s.raw && isReset(err) && s.complete()) {
		// A framed peer that resets the connection once the run is
		// complete closed it with bytes unread (an ack it no longer
		// needed): as clean as a close.
		if s.raw {
			p.end(false, 0) // a raw peer ends its stream by closing it
			if p.direct {
				s.passEnd(p, dst)
			}
		} else {
			src.eofOnce.Do(func() { close(src.eof) })
		}
		return
	}
	s.fail(src.side, fmt.Errorf("read %s: %w", src.side, err))
}

func (s *relaySession) handleControl(src, dst *relaySide, p *relayPipe, ctl Control) error {
	return s.handleControlFwd(src, dst, p, ctl, true)
}

// handleControlFwd is handleControl; forward false leaves forwarding the
// ack to the caller (a passthrough writes it with the bytes around it).
func (s *relaySession) handleControlFwd(src, dst *relaySide, p *relayPipe, ctl Control, forward bool) error {
	switch ctl.Type {
	case Ack:
		// An ack from src acknowledges what this relay wrote to src: it
		// moves src's in-pipe figure, and goes on unchanged to dst, whose
		// writer it is really for.
		if prev := src.acked.Load(); ctl.Bytes > prev {
			src.acked.Store(ctl.Bytes)
			src.obs.Acked(ctl.Bytes - prev)
			src.obs.InPipe(-(ctl.Bytes - prev))
		}
		select {
		case src.ackPoke <- struct{}{}:
		default:
		}
		// Once the run is complete, an ack the writer no longer waits for
		// may find it gone: not a failure.
		if !forward {
			break
		}
		if err := dst.conn.WriteControl(ctl); err != nil && !s.closing.Load() && !s.complete() {
			s.fail(dst.side, fmt.Errorf("forward ack %s: %w", dst.side, err))
		}
	case Fin:
		if got := p.read.Load(); got != ctl.Bytes {
			return protocolErrorf("%s peer wrote %d bytes, %d arrived", src.side, ctl.Bytes, got)
		}
		p.end(true, ctl.Bytes)
	}
	return nil
}

// writeLoop writes what p holds to dst, then passes p's end on: a fin, or
// for a raw connection a half-close.
func (s *relaySession) writeLoop(ctx context.Context, p *relayPipe, dst *relaySide) {
	for {
		b, ended, ok := p.next(ctx)
		if !ok {
			return
		}
		if ended {
			s.passEnd(p, dst)
			return
		}
		err := s.writeBlock(p, dst, b)
		p.release(b)
		if err != nil {
			return
		}
	}
}

// streamPauseAfter is how long a direct pipe's write must block before its
// reader counts as paused (RelayObserver.ReadingPaused): the reader does not
// read while it writes, and a write blocked this long is the upstream's
// backpressure, not the system call's own time.
const streamPauseAfter = time.Millisecond

// writeDirect writes b, just read, from the reading goroutine (a direct
// pipe): b counts as buffered while the write is in progress, exactly as a
// queued block would, and a write that blocks for streamPauseAfter counts
// as a pause in reading until it returns. It reports whether the relay goes
// on.
func (s *relaySession) writeDirect(p *relayPipe, dst *relaySide, b []byte) bool {
	n := int64(len(b))
	p.obs.Buffered(p.dir, n)
	p.startWrite()
	err := s.writeBlock(p, dst, b)
	p.endWrite()
	p.obs.Buffered(p.dir, -n)
	p.budget.release(n)
	return err == nil
}

// startWrite arms the pause timer of a direct pipe's write.
func (p *relayPipe) startWrite() {
	p.mu.Lock()
	p.writing = true
	if p.pauseTimer == nil {
		p.pauseTimer = time.AfterFunc(streamPauseAfter, p.writeBlocked)
	} else {
		p.pauseTimer.Reset(streamPauseAfter)
	}
	p.mu.Unlock()
}

// writeBlocked runs when a direct pipe's write has blocked streamPauseAfter.
func (p *relayPipe) writeBlocked() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.writing && p.pausedSince.IsZero() {
		p.pausedSince = time.Now().Add(-streamPauseAfter)
		p.obs.ReadingPaused(p.dir, true, 0)
	}
}

// endWrite ends a direct pipe's write, and the pause it caused if any.
func (p *relayPipe) endWrite() {
	p.mu.Lock()
	p.writing = false
	p.pauseTimer.Stop()
	since := p.pausedSince
	p.pausedSince = time.Time{}
	if !since.IsZero() {
		p.obs.ReadingPaused(p.dir, false, time.Since(since))
	}
	p.mu.Unlock()
}

// writeBlock writes one block of payload to dst, counted and observed; a
// write error fails the relay unless it is closing.
func (s *relaySession) writeBlock(p *relayPipe, dst *relaySide, b []byte) error {
	began := time.Now()
	if w, ok := dst.obs.(WriteStartObserver); ok {
		w.WriteStarting(began)
	}
	n, err := dst.conn.WritePayload(b)
	blocked := time.Since(began)
	if n > 0 {
		p.written.Add(int64(n))
		if dst.conn.SpeaksControl() {
			dst.obs.InPipe(int64(n))
		}
	}
	dst.obs.Wrote(n, blocked, blocked >= s.cfg.StallThreshold)
	if err != nil && !s.closing.Load() {
		s.fail(dst.side, fmt.Errorf("write %s: %w", dst.side, err))
	}
	return err
}

// passEnd passes p's end on to dst once every byte before it was written:
// a fin, or for a raw connection a half-close.
func (s *relaySession) passEnd(p *relayPipe, dst *relaySide) {
	var err error
	if fin, isFin := p.fin(); isFin {
		err = dst.conn.WriteControl(Control{Type: Fin, Bytes: fin})
	} else {
		err = closeWrite(dst.conn)
	}
	if err != nil {
		if !s.closing.Load() {
			s.fail(dst.side, fmt.Errorf("forward end of stream %s: %w", dst.side, err))
		}
		return
	}
	close(p.done)
}

// relayPipe is one direction's explicit, bounded buffer: a queue of blocks
// filled by the reader and emptied by the writer.
type relayPipe struct {
	dir      Direction
	capacity int // bytes the buffer may hold
	chunk    int // bytes one read asks for; the reader waits for this much room
	// direct: the buffer holds one read (capacity < 2 chunks), so the
	// reader writes each read itself; blocks and the writer are unused.
	direct bool
	// A direct pipe's write in progress, and the pause it caused.
	writing     bool
	pauseTimer  *time.Timer
	pausedSince time.Time
	budget      *RelayBudget
	obs         RelayObserver

	mu       sync.Mutex
	blocks   [][]byte // queued payload; the last one takes appends while tailOpen
	tailOpen bool
	buffered int // bytes queued or being written
	ended    bool
	isFin    bool
	finBytes int64
	pending  int64 // budget reserved for the read in progress

	dataReady  chan struct{} // poked by the reader
	spaceFreed chan struct{} // poked by the writer
	done       chan struct{} // closed when the end was passed on

	read, written atomic.Int64
}

func newRelayPipe(dir Direction, cfg *RelayConfig) *relayPipe {
	return &relayPipe{
		dir: dir, capacity: cfg.Buffer, chunk: cfg.ReadSize, budget: cfg.Budget, obs: cfg.Buffers,
		direct:    cfg.Buffer < 2*cfg.ReadSize,
		dataReady: make(chan struct{}, 1), spaceFreed: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

var relayBlocks = sync.Pool{New: func() any { b := make([]byte, 0, relayBlockSize); return &b }}

// waitRoom blocks until the buffer has room for one read and the budget
// granted it. Waiting is the relay pausing its reading: that is how
// backpressure passes on.
func (p *relayPipe) waitRoom(ctx context.Context) error {
	var since time.Time
	paused := false
	defer func() {
		if paused {
			p.obs.ReadingPaused(p.dir, false, time.Since(since))
		}
	}()
	for {
		p.mu.Lock()
		room := p.capacity-p.buffered >= p.chunk
		p.mu.Unlock()
		var budgetWait <-chan struct{}
		if room {
			var ok bool
			if ok, budgetWait = p.budget.reserve(int64(p.chunk)); ok {
				p.mu.Lock()
				p.pending = int64(p.chunk)
				p.mu.Unlock()
				return nil
			}
		}
		if !paused {
			paused, since = true, time.Now()
			p.obs.ReadingPaused(p.dir, true, 0)
		}
		select {
		case <-p.spaceFreed:
		case <-budgetWait: // nil unless the budget was the limit
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// reserved gives back the part of the read's budget the read did not use.
func (p *relayPipe) reserved(n int) {
	p.mu.Lock()
	rest := p.pending - int64(n)
	p.pending = 0
	p.mu.Unlock()
	p.budget.release(rest)
}

// push queues a copy of b.
func (p *relayPipe) push(b []byte) {
	n := len(b)
	p.mu.Lock()
	for len(b) > 0 {
		if !p.tailOpen || len(p.blocks) == 0 {
			p.blocks = append(p.blocks, (*relayBlocks.Get().(*[]byte))[:0])
			p.tailOpen = true
		}
		last := len(p.blocks) - 1
		blk := p.blocks[last]
		m := min(len(b), cap(blk)-len(blk))
		if m == 0 {
			p.tailOpen = false
			continue
		}
		p.blocks[last] = append(blk, b[:m]...)
		b = b[m:]
	}
	p.buffered += n
	p.mu.Unlock()
	p.obs.Buffered(p.dir, int64(n))
	poke(p.dataReady)
}

// end marks the end of the source's stream: a fin of finBytes, or (isFin
// false) a raw end of stream.
func (p *relayPipe) end(isFin bool, finBytes int64) {
	p.mu.Lock()
	if !p.ended {
		p.ended, p.isFin, p.finBytes = true, isFin, finBytes
	}
	p.mu.Unlock()
	poke(p.dataReady)
}

func (p *relayPipe) hasEnded() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ended
}

func (p *relayPipe) fin() (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.finBytes, p.ended && p.isFin
}

// next returns the next block to write, or ended once every byte before
// the end was handed out; ok is false when ctx ended.
func (p *relayPipe) next(ctx context.Context) (b []byte, ended, ok bool) {
	for {
		p.mu.Lock()
		if len(p.blocks) > 0 {
			b = p.blocks[0]
			p.blocks[0] = nil
			p.blocks = p.blocks[1:]
			if len(p.blocks) == 0 {
				p.tailOpen = false // the reader starts a new block
				p.blocks = nil
			}
			p.mu.Unlock()
			return b, false, true
		}
		ended = p.ended
		p.mu.Unlock()
		if ended {
			return nil, true, true
		}
		select {
		case <-p.dataReady:
		case <-ctx.Done():
			return nil, false, false
		}
	}
}

// release frees a block the writer is done with.
func (p *relayPipe) release(b []byte) {
	n := len(b)
	p.mu.Lock()
	p.buffered -= n
	p.mu.Unlock()
	p.obs.Buffered(p.dir, -int64(n))
	p.budget.release(int64(n))
	b = b[:0]
	relayBlocks.Put(&b)
	poke(p.spaceFreed)
}

// drop frees what is left when the connection ends.
func (p *relayPipe) drop() {
	p.mu.Lock()
	blocks := p.blocks
	p.blocks, p.tailOpen = nil, false
	rest := p.pending
	p.pending = 0
	p.mu.Unlock()
	p.budget.release(rest)
	for _, b := range blocks {
		p.release(b)
	}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
