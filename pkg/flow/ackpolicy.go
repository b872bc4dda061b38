package flow

import (
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
// (one atomic load per read call), and it wakes the acker once AckBytes
// more were read than the last ack said. It also holds the hello's via
// list, which the first ack echoes.
type ackPolicy struct {
	sent   atomic.Int64 // bytes in the last ack sent
	lastAt time.Time    // when it was sent; only the acker touches it
	due    chan struct{}
	via    atomic.Pointer[[]string]
}

func newAckPolicy() *ackPolicy { return &ackPolicy{due: make(chan struct{}, 1)} }

// read is called by the reader with the bytes read so far.
func (p *ackPolicy) read(total int64) {
	if total-p.sent.Load() < AckBytes {
		return
	}
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
	d := MinAckGap - time.Since(p.lastAt)
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
	p.lastAt = time.Now()
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
