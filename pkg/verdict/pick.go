package verdict

import (
	"slices"
	"time"
)

// connView is one stalled connection's answer, before aggregation.
type connView struct {
	stall Stall
	block *Block // the first block of the stall, nil if none
	stop  stopPosition
	// absorbed: bytes written and not read when the write blocked (or the
	// most in the pipe during the stall); accepted: bytes the writes
	// accepted after the stop; delay: from the stop to the block.
	absorbed  int64
	accepted  int64
	delay     time.Duration
	sendQueue int64 // -1 unknown
	kernel    bool
	// windowOpen: the writes blocked with a kernel sample inside the
	// block, the next hop's window known and never zero in the stall, on
	// a connection of its own (not a stream).
	windowOpen bool
	// inSocketOnly: absorbed is only what the client's socket held (the
	// writes' count was below what the server had read: a large write in
	// progress), a lower bound that leaves out the rest of the path.
	inSocketOnly bool
	// blockedBefore counts the connection's write calls that had ended
	// blocking before the stall began.
	blockedBefore int
	// aside is a write that blocked in another stall with the path not
	// full (nil: none); the view's stall is not it.
	aside *unfilledBlock
}

// stopPosition is where the server stopped reading, in time and in bytes,
// as the client sees it. Every figure of the verdict that depends on the
// stop reads it from here, so a better estimate changes one function
// (stopOf).
type stopPosition struct {
	at      time.Duration // when the server stopped
	within  time.Duration // how precisely that is known (0: the ack interval)
	read    int64         // what it had read by then: exact, its last ack
	written int64         // what the client had written by then
}

// stopOf is the stall's stop position: its start, the bytes acknowledged
// when it began, and the bytes written by then (interpolated between the
// two acks around it). Nothing is read before it is written, so the bytes
// written are never below the bytes read: bytes accepted after the stop
// are never more than what the path held when the writes blocked.
func stopOf(st Stall) stopPosition {
	return stopPosition{at: st.Since, within: st.StopWithin, read: st.AckedBytes, written: max(st.WrittenAtSince, st.AckedBytes)}
}

// slack is how far before the stall's start a block may begin and still
// count as caused by it: the stop is known only to within an ack interval.
func slack(ackInterval time.Duration) time.Duration { return ackInterval }

// pickAll appends each stalled connection's view to views, in order; the
// others contribute only the count of their blocked writes
// (blocksWithoutStall).
func pickAll(tls []Timeline, resolution time.Duration, views []connView) (_ []connView, blocksWithoutStall int) {
	views = slices.Grow(views, len(tls))
	for _, tl := range tls {
		if len(tl.Stalls) == 0 {
			blocksWithoutStall += len(tl.Blocks) + tl.BlocksDropped
			continue
		}
		views = append(views, pick(tl, resolution))
	}
	return views, blocksWithoutStall
}

// pick is one connection's answer (its timeline has a stall): the stall
// that mattered, the first write that blocked during it, and the bytes
// the path held then.
func pick(tl Timeline, resolution time.Duration) connView {
	st, b, aside := mattered(tl, resolution)
	cv := connView{stall: st, block: b, aside: aside, stop: stopOf(st), sendQueue: -1, kernel: tl.Kernel, absorbed: st.PeakInPipe}
	cv.blockedBefore = blockedBefore(tl.Blocks, cv.stop.at, resolution)
	if b == nil {
		cv.accepted = max(cv.stop.read+st.PeakInPipe-cv.stop.written, 0)
		return cv
	}
	cv.delay = max(b.Began-cv.stop.at, 0)
	cv.windowOpen = b.SendQueue >= 0 && tl.PeerWindowKnown && !tl.Stream && st.PeerWindowZeroAt < 0
	// What the writes before the block wrote, less what the server had
	// read; at least what the kernel held in this client's socket then
	// (its send queue, sampled during the block): with a large write in
	// progress the acks pass the completed writes' count (a write's bytes
	// count when it returns), and only the kernel sees the rest.
	cv.absorbed = max(b.WrittenBefore-cv.stop.read, b.SendQueue, 0)
	cv.inSocketOnly = b.SendQueue > b.WrittenBefore-cv.stop.read
	cv.accepted = max(b.WrittenBefore-cv.stop.written, 0)
	cv.sendQueue = b.SendQueue
	return cv
}

// mattered is the stall that mattered, with its first blocked write: the
// first stall that made a write block with the path full (filled, and no
// laterFuller), else
// the longest of the others (the first of equals), with no block. A block
// that is not the path filling is returned as the aside, with its stall,
// for the reasons to tell.
func mattered(tl Timeline, resolution time.Duration) (st Stall, b *Block, aside *unfilledBlock) {
	longest := -1
	var held int64 // the most an earlier stall held with no write blocked
	for i, s := range tl.Stalls {
		blk := blockOf(tl.Blocks, s, resolution)
		var fuller int64
		if blk != nil && filled(blk, s, held) {
			if fuller = laterFuller(tl, i, blk, resolution); fuller == 0 {
				return s, blk, aside
			}
		}
		if blk != nil {
			if aside == nil {
				aside = &unfilledBlock{stall: s, block: *blk, held: held, later: fuller}
			}
			continue
		}
		held = max(held, s.PeakInPipe)
		if longest < 0 || s.Until-s.Since > tl.Stalls[longest].Until-tl.Stalls[longest].Since {
			longest = i
		}
	}
	// Nothing returned: a stall had no block and set longest. (Blocks
	// set aside for a later, fuller one end in a block that is returned,
	// or in one set aside for held, which a stall with no block set.)
	return tl.Stalls[longest], nil, aside
}

// unfilledBlock is a write that blocked during a stall with far less in
// the pipe than an earlier stall held with no write blocked, or than a
// later, longer stall's block found (laterFuller): the path had
// room, so it was not the path filling with bytes the server had not read
// (a hiccup of the path or of the client, a short gap in the acks), and
// not the verdict's stop.
type unfilledBlock struct {
	stall Stall
	block Block
	held  int64 // what the earlier stall held without blocking
	// later is what a later stall, at least twice as long, had in the
	// pipe when its write blocked, twice this block's or more
	// (laterFuller); 0 when the block was set aside for held.
	later int64
}

// inPipe is what was written and not read when the write blocked.
func (x unfilledBlock) inPipe() int64 { return max(x.block.WrittenBefore-stopOf(x.stall).read, 0) }

// filled says whether a write that blocked during st did so on a full
// path: with at least half of held in the pipe, held being the most an
// earlier stall had in it with no write blocked. A path's queues grow
// (autotuning) rather than shrink, so a block with much less in it than
// it held before is not its buffers filling; the half is a wide margin
// for the bytes at the block being known to a write, and the peak only
// to a pass.
func filled(b *Block, st Stall, held int64) bool {
	return 2*(unfilledBlock{stall: st, block: *b}).inPipe() >= held
}

// laterFuller says whether the block in stall i, though the first, was a
// short gap in the acks before the path was full: a later stall at least
// twice as long blocked with at least twice the bytes in the pipe. On a
// path through a busy hop or a late delay line the acks can pause for a
// few hundred milliseconds early in a run, long enough for the client's
// own send buffer to fill while the hop's queues are still empty; the
// server's stop comes later and fills them (e2e TestPathProfiles'
// wan-haproxy saw 1 MB, then 2.9 MB). Both conditions, so a server that
// stops twice for as long, the second time into buffers that autotuning
// has grown, still has its first stop picked.
//
// It returns what that later stall had in the pipe when its write
// blocked, 0 when there is none.
func laterFuller(tl Timeline, i int, blk *Block, resolution time.Duration) int64 {
	s := tl.Stalls[i]
	in := unfilledBlock{stall: s, block: *blk}.inPipe()
	for _, later := range tl.Stalls[i+1:] {
		lb := blockOf(tl.Blocks, later, resolution)
		if lb == nil || later.Until-later.Since < 2*(s.Until-s.Since) {
			continue
		}
		if full := (unfilledBlock{stall: later, block: *lb}).inPipe(); full >= 2*in {
			return full
		}
	}
	return 0
}

// blockOf is the first write that blocked during the stall: begun after
// it started (within one ack interval before: the stop is known no
// better), or begun before and still blocked well after it started.
// A block that ended while the stall went on, with the pipe then taking
// twice as much or more (its peak), is passed over for the next: the
// server read nothing, so the write returned because the path had room
// after all (a late hop or delay line let the client's own send buffer
// fill for a moment). When every block is such, the first is the one.
func blockOf(blocks []Block, st Stall, resolution time.Duration) *Block {
	since := stopOf(st).at
	var first *Block
	for i := range blocks {
		b := blocks[i]
		if b.Began > st.Until {
			break
		}
		if b.Began >= since-slack(resolution) || b.Ongoing || b.Ended >= since+slack(resolution) {
			if b.Ended < since {
				continue
			}
			if !passedOver(b, st, resolution) {
				return &b
			}
			if first == nil {
				first = &b
			}
		}
	}
	return first
}

// passedOver says whether a block in st ended well before the stall did
// and the pipe later held at least twice what it held then.
func passedOver(b Block, st Stall, resolution time.Duration) bool {
	in := max(b.WrittenBefore-stopOf(st).read, 0)
	return !b.Ongoing && b.Ended < st.Until-slack(resolution) && st.PeakInPipe >= 2*in
}

// blockedBefore counts the blocks that ended before the stop (less the
// slack): blocked writes the stop did not cause.
func blockedBefore(blocks []Block, stop, resolution time.Duration) int {
	n := 0
	for _, b := range blocks {
		if b.Ended < stop-slack(resolution) {
			n++
		}
	}
	return n
}
