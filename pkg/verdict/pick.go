package verdict

import "time"

// connView is one stalled connection's answer, before aggregation.
type connView struct {
	stall *Stall
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
	// blockedBefore counts the connection's write calls that had ended
	// blocking before the stall began.
	blockedBefore int
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

// pickAll picks each stalled connection's view, in order; the others
// contribute only the count of their blocked writes (blocksWithoutStall).
func pickAll(tls []Timeline, resolution time.Duration) (views []connView, blocksWithoutStall int) {
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
	st, b := mattered(tl, resolution)
	cv := connView{stall: &st, block: b, stop: stopOf(st), sendQueue: -1, kernel: tl.Kernel, absorbed: st.PeakInPipe}
	cv.blockedBefore = blockedBefore(tl.Blocks, cv.stop.at, resolution)
	if b == nil {
		cv.accepted = max(cv.stop.read+st.PeakInPipe-cv.stop.written, 0)
		return cv
	}
	cv.delay = max(b.Began-cv.stop.at, 0)
	cv.absorbed = max(b.WrittenBefore-cv.stop.read, 0)
	cv.accepted = max(b.WrittenBefore-cv.stop.written, 0)
	cv.sendQueue = b.SendQueue
	return cv
}

// mattered is the stall that mattered, with its first blocked write: the
// first stall that made a write block, else the longest (the first of
// equals), with no block.
func mattered(tl Timeline, resolution time.Duration) (Stall, *Block) {
	longest := -1
	for i, st := range tl.Stalls {
		if b := blockOf(tl.Blocks, st, resolution); b != nil {
			return st, b
		}
		if longest < 0 || st.Until-st.Since > tl.Stalls[longest].Until-tl.Stalls[longest].Since {
			longest = i
		}
	}
	return tl.Stalls[longest], nil
}

// blockOf is the first write that blocked during the stall: begun after
// it started (within one ack interval before: the stop is known no
// better), or begun before and still blocked well after it started.
func blockOf(blocks []Block, st Stall, resolution time.Duration) *Block {
	since := stopOf(st).at
	for i := range blocks {
		b := blocks[i]
		if b.Began > st.Until {
			break
		}
		if b.Began >= since-slack(resolution) || b.Ongoing || b.Ended >= since+slack(resolution) {
			if b.Ended < since {
				continue
			}
			return &b
		}
	}
	return nil
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
