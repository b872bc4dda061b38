package relay

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// side is one of a relayed connection's two connections.
type side struct {
	side    Side
	conn    flow.Conn
	obs     flow.ConnObserver
	acks    *flow.AckTracker   // the acks this side's peer sent, for what the relay wrote it
	writes  flow.WriteObserver // the relay's payload writes to this side
	eof     chan struct{}      // closed when a framed peer closed the connection
	eofOnce sync.Once
}

func newSide(name Side, c flow.Conn, obs flow.ConnObserver, cfg *Config) *side {
	return &side{
		side: name, conn: c, obs: obs, eof: make(chan struct{}),
		acks:   flow.NewAckTracker(obs, c.SpeaksControl()),
		writes: flow.NewWriteObserver(obs, cfg.StallThreshold, c.SpeaksControl()),
	}
}

// session is one relayed connection: two sides, a pipe each way.
type session struct {
	cfg              *Config
	raw              bool
	dir              flow.Direction
	down, up         *side
	upPipe, downPipe *pipe

	closing  atomic.Bool
	failOnce sync.Once
	failSide Side
	failErr  error
	cancel   context.CancelFunc
}

func (s *session) fail(side Side, err error) {
	s.failOnce.Do(func() {
		s.failSide, s.failErr = side, err
		s.cancel()
	})
}

// failure is the first failure, safe to read once the run's context ended.
func (s *session) failure() (Side, error) {
	s.failOnce.Do(func() {}) // no failure from now on: closing is on purpose
	return s.failSide, s.failErr
}

// run relays until the connection ends, fails, or ctx ends; then closes
// both sides the way the end calls for and reports it.
func (s *session) run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.cancel = cancel
	for _, p := range []*pipe{s.upPipe, s.downPipe} {
		s.cfg.Buffers.Capacity(p.dir, int64(p.capacity))
	}
	var wg sync.WaitGroup
	s.startLoops(runCtx, &wg)
	clean := s.supervise(runCtx)

	s.closing.Store(true)
	failSide, failErr := s.failure()
	// A last look at both sockets (kernel statistics) while they are open.
	for _, o := range []flow.ConnObserver{s.down.obs, s.up.obs} {
		if c, ok := o.(flow.ClosingObserver); ok {
			c.Closing()
		}
	}
	err := s.closeSides(ctx, clean, failSide, failErr)
	cancel()
	wg.Wait()
	s.finish(err, failSide, failErr)
	return err
}

// startLoops starts a reader per direction, and a writer for each pipe
// that is not direct (a direct pipe's reader writes itself).
func (s *session) startLoops(ctx context.Context, wg *sync.WaitGroup) {
	start := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	start(func() { s.readLoop(ctx, s.down, s.up, s.upPipe) })
	start(func() { s.readLoop(ctx, s.up, s.down, s.downPipe) })
	for _, pw := range []struct {
		pipe *pipe
		dst  *side
	}{{s.upPipe, s.up}, {s.downPipe, s.down}} {
		if !pw.pipe.direct {
			start(func() { s.writeLoop(ctx, pw.pipe, pw.dst) })
		}
	}
}

// supervise waits for the connection's end and reports whether it was
// clean: a raw relay ends when both directions passed their end on (or the
// linger after the first ran out); a framed one when the client closed
// after a complete run and the relay drained (finishAfterDownstream).
// Anything else is a failure (s.fail) or ctx ending.
func (s *session) supervise(ctx context.Context) bool {
	upDone, downDone := s.upPipe.done, s.downPipe.done
	downEOF, upEOF := s.down.eof, s.up.eof
	var linger lingerTimer
	defer linger.stop()
	// rawDone: a raw direction passed its end on; with the other done too
	// that is the end, else the other gets the linger timeout to follow.
	rawDone := func(other <-chan struct{}) bool {
		if other == nil {
			return true
		}
		linger.start(s.cfg.LingerTimeout)
		return false
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case <-upDone:
			upDone = nil
			if s.raw && rawDone(downDone) {
				return true
			}
		case <-downDone:
			downDone = nil
			if s.raw && rawDone(upDone) {
				return true
			}
		case <-downEOF:
			// The client closes once its run is done; what it sent before
			// closing still has to drain upstream.
			if side, err := s.finishAfterDownstream(ctx); err != nil {
				s.fail(side, err)
				return false
			}
			return true
		case <-upEOF:
			upEOF = nil
			if !s.complete() {
				s.fail(Upstream, fmt.Errorf("upstream: %w", flow.ErrPeerClosed))
				return false
			}
			linger.start(s.cfg.LingerTimeout) // everything was said: wait for the client to close
		case <-linger.C:
			if s.raw || s.complete() {
				return true
			}
			s.fail(Downstream, fmt.Errorf("%w: run not finished after %s", flow.ErrDrainTimeout, s.cfg.LingerTimeout))
			return false
		}
	}
}

// lingerTimer is the linger timeout once it started; C is nil before.
type lingerTimer struct {
	t *time.Timer
	C <-chan time.Time
}

func (l *lingerTimer) start(d time.Duration) {
	if l.t == nil {
		l.t = time.NewTimer(d)
		l.C = l.t.C
	}
}

func (l *lingerTimer) stop() {
	if l.t != nil {
		l.t.Stop()
	}
}

// closeSides closes both connections as the end calls for: after a failure
// the downstream peer (and upstream, when downstream failed) sees an error;
// otherwise both close plainly. It returns the run's error.
func (s *session) closeSides(ctx context.Context, clean bool, failSide Side, failErr error) error {
	if failErr != nil {
		flow.Abort(s.down.conn, string(failSide)+" failed: "+failErr.Error())
		if failSide == Downstream {
			flow.Abort(s.up.conn, "downstream failed: "+failErr.Error())
		} else {
			s.up.conn.Close()
		}
		return failErr
	}
	s.up.conn.Close()
	s.down.conn.Close()
	if clean {
		return nil
	}
	return ctx.Err() // ctx ended: shutdown
}

// finish frees the buffers and tells the observers, once every goroutine
// of the connection has returned.
func (s *session) finish(err error, failSide Side, failErr error) {
	for _, p := range []*pipe{s.upPipe, s.downPipe} {
		p.drop()
		s.cfg.Buffers.Capacity(p.dir, -int64(p.capacity))
	}
	// Bytes this relay wrote that the peers never acknowledged leave the
	// in-pipe gauge with the connection.
	s.up.acks.Drain(s.upPipe.written.Load())
	s.down.acks.Drain(s.downPipe.written.Load())
	s.down.obs.Closed(err)
	s.up.obs.Closed(err)
	if failErr != nil {
		s.cfg.Buffers.Failed(failSide, failErr)
	}
}

// complete reports whether every direction the hello announced has ended
// with its writer's fin.
func (s *session) complete() bool {
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
func (s *session) finishAfterDownstream(ctx context.Context) (Side, error) {
	if !s.complete() {
		return Downstream, fmt.Errorf("downstream: %w", flow.ErrPeerClosed)
	}
	t := time.NewTimer(s.cfg.LingerTimeout)
	defer t.Stop()
	for _, p := range []*pipe{s.upPipe, s.downPipe} {
		if !p.hasEnded() {
			continue
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return "", nil
		case <-t.C:
			return Upstream, fmt.Errorf("%w: the %s fin was not forwarded within %s", flow.ErrDrainTimeout, p.dir, s.cfg.LingerTimeout)
		}
	}
	if fin, ok := s.upPipe.fin(); ok && s.up.conn.SpeaksControl() {
		for s.up.acks.Acked() < fin {
			select {
			case <-s.up.acks.Changed():
			case <-s.up.eof:
				return "", nil // upstream is gone too; it had the fin
			case <-ctx.Done():
				return "", nil
			case <-t.C:
				return Upstream, fmt.Errorf("%w: upstream acknowledged %d of %d bytes", flow.ErrDrainTimeout, s.up.acks.Acked(), fin)
			}
		}
	}
	return "", nil
}
