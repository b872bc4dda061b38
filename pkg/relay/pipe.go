package relay

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// pipe is one direction's explicit, bounded buffer: a queue of blocks
// filled by the reader and emptied by the writer.
type pipe struct {
	dir      flow.Direction
	capacity int // bytes the buffer may hold
	chunk    int // bytes one read asks for; the reader waits for this much room
	// direct: the buffer holds one read (capacity < 2 chunks), so the
	// reader writes each read itself; blocks and the writer are unused.
	direct bool
	// A direct pipe's write in progress, and the pause it caused.
	writing     bool
	pauseTimer  *time.Timer
	pausedSince time.Time
	budget      *Budget
	obs         Observer

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

func newPipe(dir flow.Direction, cfg *Config) *pipe {
	return &pipe{
		dir: dir, capacity: cfg.Buffer, chunk: cfg.ReadSize, budget: cfg.Budget, obs: cfg.Buffers,
		direct:    cfg.Buffer < 2*cfg.ReadSize,
		dataReady: make(chan struct{}, 1), spaceFreed: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

var blockPool = sync.Pool{New: func() any { b := make([]byte, 0, blockSize); return &b }}

// waitRoom blocks until the buffer has room for one read and the budget
// granted it. Waiting is the relay pausing its reading: that is how
// backpressure passes on.
func (p *pipe) waitRoom(ctx context.Context) error {
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
func (p *pipe) reserved(n int) {
	p.mu.Lock()
	rest := p.pending - int64(n)
	p.pending = 0
	p.mu.Unlock()
	p.budget.release(rest)
}

// push queues a copy of b.
func (p *pipe) push(b []byte) {
	n := len(b)
	p.mu.Lock()
	for len(b) > 0 {
		if !p.tailOpen || len(p.blocks) == 0 {
			p.blocks = append(p.blocks, (*blockPool.Get().(*[]byte))[:0])
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
func (p *pipe) end(isFin bool, finBytes int64) {
	p.mu.Lock()
	if !p.ended {
		p.ended, p.isFin, p.finBytes = true, isFin, finBytes
	}
	p.mu.Unlock()
	poke(p.dataReady)
}

func (p *pipe) hasEnded() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ended
}

func (p *pipe) fin() (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.finBytes, p.ended && p.isFin
}

// next returns the next block to write, or ended once every byte before
// the end was handed out; ok is false when ctx ended.
func (p *pipe) next(ctx context.Context) (b []byte, ended, ok bool) {
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
func (p *pipe) release(b []byte) {
	n := len(b)
	p.mu.Lock()
	p.buffered -= n
	p.mu.Unlock()
	p.obs.Buffered(p.dir, -int64(n))
	p.budget.release(int64(n))
	b = b[:0]
	blockPool.Put(&b)
	poke(p.spaceFreed)
}

// stats is what the pipe carried so far.
func (p *pipe) stats() PipeStats {
	return PipeStats{Read: p.read.Load(), Written: p.written.Load()}
}

// drop frees what is left when the connection ends.
func (p *pipe) drop() {
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

// startWrite arms the pause timer of a direct pipe's write.
func (p *pipe) startWrite() {
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
func (p *pipe) writeBlocked() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.writing && p.pausedSince.IsZero() {
		p.pausedSince = time.Now().Add(-streamPauseAfter)
		p.obs.ReadingPaused(p.dir, true, 0)
	}
}

// endWrite ends a direct pipe's write, and the pause it caused if any.
func (p *pipe) endWrite() {
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
