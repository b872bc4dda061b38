package flow

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// Ack policy: when the reading side acks. Acks go out every AckInterval
// while the count changes, and also as soon as AckBytes more were read
// since the last ack, but never closer than MinAckGap apart. By time alone,
// at 2 GB/s an ack is 200 MB old when the next one comes, and the writer's
// "bytes in the pipe" (written - acked) is mostly the acks' age; with the
// byte trigger it is at most AckBytes, or what MinAckGap lets through at
// the read rate (2 MB at 2 GB/s), over the real figure. The bound on the
// rate (at most 1000 acks a second, about 30 kB/s of acks) keeps the back
// channel cheap whatever the speed. Older peers just see more acks.
const (
	// AckBytes read since the last ack trigger the next one.
	AckBytes = 1 << 20
	// MinAckGap is the least time between two acks the byte trigger sends.
	MinAckGap = time.Millisecond
)

// ackPolicy is a session's ack trigger: the reader tells it the bytes read
// (one atomic load per read call), and once AckBytes more were read than
// the last ack said, the ack is due. Where this side writes no payload (the
// server of an upload, the client of a download) the reader sends it
// itself, at once: handing it on costs a wake-up, and on a busy machine
// that wake-up can wait long enough for tens of MB to pass. Where this side
// writes payload too, a control write can wait behind its own
// backpressure, so the reader fires the ack timer instead. It also holds
// what the first ack echoes of the path: the hello's via list and the
// address the connection is seen from.
//
// The periodic acks (every AckInterval while the count changes) come from
// a timer the reader arms when it reads bytes and no ack is pending (and
// Run once at the start, for the first ack): a connection that reads
// nothing costs nothing after that, where a ticker goroutine per
// connection woke ten times a second and held a stack.
type ackPolicy struct {
	sent   atomic.Int64 // bytes in the last ack sent (-1: none yet)
	lastAt atomic.Int64 // when it was sent, unix nanoseconds
	echo   atomic.Pointer[pathEcho]
	// armed: the ack timer will fire and send what was read by then.
	armed atomic.Bool
	// poked: the byte trigger moved the timer forward; cleared when it fires.
	poked atomic.Bool
	timer *time.Timer // created by Run or the reader, on first use
}

func newAckPolicy() *ackPolicy {
	p := &ackPolicy{}
	p.sent.Store(-1)
	return p
}

// byBytes reports whether the reader's total calls for an ack now: AckBytes
// past the last one, and MinAckGap since it.
func (p *ackPolicy) byBytes(total int64) bool {
	return total-p.sent.Load() >= AckBytes && time.Now().UnixNano()-p.lastAt.Load() >= int64(MinAckGap)
}

// armAck has the ack timer send the bytes read so far in AckInterval,
// unless it is armed already. Only the reader calls it, and Run before the
// reader starts (the first ack).
func (s *Session) armAck() {
	p := s.ackp
	if p.armed.Load() || p.armed.Swap(true) {
		return
	}
	if p.timer == nil {
		p.timer = time.AfterFunc(s.plan.AckInterval, s.ackTick)
		return
	}
	p.timer.Reset(s.plan.AckInterval)
}

// pokeAck has the ack timer fire now (an ack due by bytes, where this side
// writes payload): at once, or when MinAckGap has passed since the last
// ack, the byte trigger's bound on the ack rate. Only the reader calls it.
func (s *Session) pokeAck() {
	p := s.ackp
	if p.poked.Swap(true) {
		return
	}
	s.armAck() // creates the timer on first use
	p.armed.Store(true)
	d := MinAckGap - time.Duration(time.Now().UnixNano()-p.lastAt.Load())
	p.timer.Reset(max(d, 0))
	if d <= 0 {
		// The timer's goroutine would wait for this one's run slot, where
		// it stays while reads never block (a full-speed reader always
		// finds bytes): yield, so the ack goes out now, not at the next
		// preemption (10 ms, 20 MB at 2 GB/s).
		runtime.Gosched()
	}
}

// ackTick is the ack timer's callback: it sends the bytes read so far.
// Clearing armed before reading the count means a read after it arms the
// timer again, so no bytes are left without an ack.
func (s *Session) ackTick() {
	if !s.timers.enter() {
		return
	}
	defer s.timers.wg.Done()
	s.ackp.poked.Store(false)
	s.ackp.armed.Store(false)
	if s.ctx.Err() != nil || isClosed(s.peerDone) {
		return // the reader sent the final ack, or the run ended
	}
	if _, err := s.sendAck(); err != nil {
		if !s.closing.Load() && s.ctx.Err() == nil && !isClosed(s.peerDone) {
			s.fail(fmt.Errorf("send ack: %w", err))
		}
	}
}

// sentAck records an ack of n bytes, sent now.
func (p *ackPolicy) sentAck(n int64) {
	p.sent.Store(n)
	p.lastAt.Store(time.Now().UnixNano())
}

// stopAck stops the ack timer, once the reader is done.
func (s *Session) stopAck() {
	if s.ackp.timer != nil {
		s.ackp.timer.Stop()
	}
}

// sendAck sends the bytes read so far, unless an ack said as much already or
// the final ack is out (done). ackMu orders every ack, and the count is read
// under it, so acks never go backwards whichever goroutine sends them.
func (s *Session) sendAck() (done bool, err error) {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	if isClosed(s.peerDone) {
		return true, nil // the final ack is out: no ack may follow it
	}
	n := s.read.Load()
	if n <= s.ackp.sent.Load() {
		return false, nil
	}
	if err := s.writeControl(s.ack(n)); err != nil {
		return false, err
	}
	s.ackp.sentAck(n)
	return false, nil
}

// ackByBytes is the reader's part of the policy, after each read of
// payload: an ack due by bytes now, else the periodic one armed.
func (s *Session) ackByBytes(total int64) error {
	if !s.conn.SpeaksControl() {
		return nil // a hello-less peer gets no acks
	}
	if !s.ackp.byBytes(total) {
		s.armAck()
		return nil
	}
	if s.plan.Write != nil {
		s.pokeAck()
		return nil
	}
	if _, err := s.sendAck(); err != nil && !s.closing.Load() && !isClosed(s.peerDone) {
		return fmt.Errorf("send ack: %w", err)
	}
	return nil
}

// pathEcho is what the first ack tells the client of its path.
type pathEcho struct {
	via      []string
	seenFrom string
}

// EchoPath has the session's first ack carry via, the hello's list of the
// relays the stream passed (empty when none), and seenFrom, the address
// this side sees the connection from (its remote address, "ip:port";
// empty: not said): the writer learns the path from them, which it
// cannot see otherwise, even a hop that does not name itself (seenFrom
// is then not its own address). Call it before Run; bp-server does for
// every client that sent a hello.
func (s *Session) EchoPath(via []string, seenFrom string) {
	if via == nil {
		via = []string{}
	}
	s.ackp.echo.Store(&pathEcho{via: via, seenFrom: seenFrom})
}

// ack is the next ack of n bytes: the first one carries the path to
// echo, if any. s.ackMu must be held, so the first ack out gets it.
func (s *Session) ack(n int64) Control {
	ctl := Control{Type: Ack, Bytes: n}
	if e := s.ackp.echo.Swap(nil); e != nil {
		ctl.Via, ctl.SeenFrom = e.via, e.seenFrom
	}
	return ctl
}

// PathObserver is an optional ability of a ConnObserver: Path is called
// when the peer's ack echoes the path (bp-server does in its first ack):
// via, the relays between this side and the server, in order (empty: none
// that say so; a third-party proxy never appears in it; nil: not said),
// and seenFrom, the address the server sees this connection from ("":
// not said), to compare with this side's own.
type PathObserver interface {
	Path(via []string, seenFrom string)
}

// notePath tells obs the path an ack echoed, if it carries one.
func notePath(obs ConnObserver, ctl Control) {
	if !ctl.echoesPath() {
		return
	}
	if p, ok := obs.(PathObserver); ok {
		p.Path(ctl.Via, ctl.SeenFrom)
	}
}
