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

	dataReady  chan struct{} // poked by the reader
	spaceFreed chan struct{} // poked by the writer
	done       chan struct{} // closed when the end was passed on

	read, written atomic.Int64
	spliced       atomic.Int64 // payload bytes of read moved by splice(2)
}

func newPipe(dir flow.Direction, cfg *Config) *pipe {
	return &pipe{
		dir: dir, capacity: cfg.Buffer, chunk: cfg.ReadSize, budget: cfg.Budget, obs: cfg.Buffers,
		direct:    cfg.Buffer < 2*cfg.ReadSize,
		dataReady: make(chan struct{}, 1), spaceFreed: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

var blockPool = sync.Pool{New: func() any { b := make([]byte, 0, blockSize); return &b }}

// waitRoom blocks until the buffer has room for one read. Waiting is the
// relay pausing its reading: that is how backpressure passes on. The shared
// budget is not asked here but after the read (hold), for the bytes the read
// returned: a reader blocked in a read holds none of it.
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
		if room {
			return nil
		}
		if !paused {
			paused, since = true, time.Now()
			p.obs.ReadingPaused(p.dir, true, 0)
		}
		select {
		case <-p.spaceFreed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// hold takes room in the shared budget for n bytes just read, before they
// are queued or written. When the budget is full the reader waits for its
// turn, a pause in reading that is counted twice over: as any pause
// (ReadingPaused) and as a budget wait (BudgetWaiting), so a cap that is too
// small for the traffic shows. It returns ctx's error when the connection
// ends first; nothing is held then.
func (p *pipe) hold(ctx context.Context, n int) error {
	if p.budget.tryAcquire(int64(n)) {
		return nil
	}
	since := time.Now()
	p.obs.ReadingPaused(p.dir, true, 0)
	p.obs.BudgetWaiting(p.dir, true, 0)
	err := p.budget.acquire(ctx, int64(n))
	waited := time.Since(since)
	p.obs.BudgetWaiting(p.dir, false, waited)
	p.obs.ReadingPaused(p.dir, false, waited)
	return err
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
	return PipeStats{Read: p.read.Load(), Written: p.written.Load(), Spliced: p.spliced.Load()}
}

// drop frees what is left when the connection ends.
func (p *pipe) drop() {
	p.mu.Lock()
	blocks := p.blocks
	p.blocks, p.tailOpen = nil, false
	p.mu.Unlock()
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

// endWrite ends a direct pipe's write, and the pause it caused if any;
// a write whose timer was never armed (a splice that never waited) ends
// the same way.
func (p *pipe) endWrite() {
	p.mu.Lock()
	p.writing = false
	if p.pauseTimer != nil {
		p.pauseTimer.Stop()
	}
	since := p.pausedSince
	p.pausedSince = time.Time{}
	if !since.IsZero() {
		p.obs.ReadingPaused(p.dir, false, time.Since(since))
	}
	p.mu.Unlock()
}
