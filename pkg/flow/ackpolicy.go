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
// itself, at once: handing it to the acker goroutine costs a wake-up, and on
// a busy machine that wake-up can wait long enough for tens of MB to pass.
// Where this side writes payload too, a control write can wait behind its
// own backpressure, so the reader wakes the acker instead. It also holds
// the hello's via list, which the first ack echoes.
type ackPolicy struct {
	sent   atomic.Int64 // bytes in the last ack sent (-1: none yet)
	lastAt atomic.Int64 // when it was sent, unix nanoseconds
	due    chan struct{}
	via    atomic.Pointer[[]string]
}

func newAckPolicy() *ackPolicy {
	p := &ackPolicy{due: make(chan struct{}, 1)}
	p.sent.Store(-1)
	return p
}

// byBytes reports whether the reader's total calls for an ack now: AckBytes
// past the last one, and MinAckGap since it.
func (p *ackPolicy) byBytes(total int64) bool {
	return total-p.sent.Load() >= AckBytes && time.Now().UnixNano()-p.lastAt.Load() >= int64(MinAckGap)
}

// poke wakes the acker for an ack due by bytes.
func (p *ackPolicy) poke() {
	select {
	case p.due <- struct{}{}:
		// The acker now waits in this goroutine's run slot, where it
		// would stay while reads never block (a full-speed reader always
		// finds bytes): yield, so the ack goes out now, not at the next
		// preemption (10 ms, 20 MB at 2 GB/s) or tick.
		runtime.Gosched()
	default:
	}
}

// wait returns once MinAckGap has passed since the last ack, or done is
// closed: the byte trigger's bound on the ack rate.
func (p *ackPolicy) wait(done <-chan struct{}) {
	d := MinAckGap - time.Duration(time.Now().UnixNano()-p.lastAt.Load())
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}

// sentAck records an ack of n bytes, sent now.
func (p *ackPolicy) sentAck(n int64) {
	p.sent.Store(n)
	p.lastAt.Store(time.Now().UnixNano())
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

// ackByBytes is the reader's part of the policy, after each read.
func (s *Session) ackByBytes(total int64) error {
	if !s.ackp.byBytes(total) {
		return nil
	}
	if s.plan.Write != nil {
		s.ackp.poke()
		return nil
	}
	if _, err := s.sendAck(); err != nil && !s.closing.Load() && !isClosed(s.peerDone) {
		return fmt.Errorf("send ack: %w", err)
	}
	return nil
}

// EchoVia has the session's first ack carry via, the hello's list of the
// relays the stream passed (empty when none): the writer learns the path
// from it, which it cannot see otherwise. Call it before Run; bp-server
// does for every client that sent a hello.
func (s *Session) EchoVia(via []string) {
	if via == nil {
		via = []string{}
	}
	s.ackp.via.Store(&via)
}

// ack is the next ack of n bytes: the first one carries the via list to
// echo, if any. s.ackMu must be held, so the first ack out gets it.
func (s *Session) ack(n int64) Control {
	ctl := Control{Type: Ack, Bytes: n}
	if v := s.ackp.via.Swap(nil); v != nil {
		ctl.Via = *v
	}
	return ctl
}

// PathObserver is an optional ability of a ConnObserver: Path is called
// when the peer's ack echoes the hello's via list (bp-server does in its
// first ack), with the relays between this side and the server, in order
// (empty: none that say so; a third-party proxy never appears in it).
type PathObserver interface {
	Path(via []string)
}

// notePath tells obs the path an ack echoed, if it carries one.
func notePath(obs ConnObserver, ctl Control) {
	if ctl.Via == nil {
		return
	}
	if p, ok := obs.(PathObserver); ok {
		p.Path(ctl.Via)
	}
}
