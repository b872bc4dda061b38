package verdict

import "testing"

// TestPick checks which stall and block a connection's view is made of,
// and the bytes measured from the stop position.
func TestPick(t *testing.T) {
	resolution := ms(100)
	short := stall(ms(1000), ms(1500), 10*mb, 10*mb+20*kb, 300*kb)
	long := stall(ms(3000), ms(7000), 30*mb, 30*mb+20*kb, 2*mb)
	later := stall(ms(8000), ms(9000), 40*mb, 40*mb, 1*mb)
	tests := []struct {
		name      string
		tl        Timeline
		since     int   // the picked stall's start, ms
		blockAt   int   // the picked block's start, ms (-1: none)
		absorbed  int64 // bytes
		accepted  int64
		before    int
		delayMsec int
		asideAt   int   // the block set aside's start, ms (0: none)
		later     int64 // what the later stall that set it aside had in the pipe
	}{
		{
			// No write blocked: the longest stall, the peak in the
			// pipe as a lower bound.
			name: "longest without a block", tl: Timeline{Stalls: []Stall{short, long}},
			since: 3000, blockAt: -1, absorbed: 2 * mb, accepted: 2*mb - 20*kb,
		},
		{
			// The first stall that made a write block wins over a
			// longer, later one.
			name: "first that blocked", tl: Timeline{Stalls: []Stall{short, long},
				Blocks: []Block{block(ms(1200), ms(1400), 10*mb+200*kb, -1)}},
			since: 1000, blockAt: 1200, absorbed: 200 * kb, accepted: 180 * kb, delayMsec: 200,
		},
		{
			// A short gap in the acks early on blocked a write with
			// 300 kB in the pipe; the long stall later blocked with
			// 1 MB: the early block was the path not yet full, set
			// aside, and the long stall's block is the view.
			name: "early hiccup", tl: Timeline{Stalls: []Stall{short, long},
				Blocks: []Block{block(ms(1200), ms(1400), 10*mb+300*kb, -1), block(ms(3300), ms(6900), 31*mb, 100*kb)}},
			since: 3000, blockAt: 3300, absorbed: 1 * mb, accepted: 1*mb - 20*kb, before: 1, delayMsec: 300, asideAt: 1200, later: 1 * mb,
		},
		{
			// Two stops as long, the second into grown buffers: the
			// first is still the one that mattered.
			name: "second stop fuller", tl: Timeline{Stalls: []Stall{stall(ms(1000), ms(4000), 10*mb, 10*mb, 300*kb), long},
				Blocks: []Block{block(ms(1200), ms(3900), 10*mb+300*kb, -1), block(ms(3300), ms(6900), 31*mb, 100*kb)}},
			since: 1000, blockAt: 1200, absorbed: 300 * kb, accepted: 300 * kb, delayMsec: 200,
		},
		{
			// A write blocked for 200 ms early in the long stall with
			// 500 kB in the pipe and returned while the server still
			// read nothing; the pipe then took 2 MB: that block had
			// room after it, so the next, at 2 MB, is the one.
			name: "block with room after", tl: Timeline{Stalls: []Stall{long},
				Blocks: []Block{block(ms(3200), ms(3400), 30*mb+500*kb, -1), block(ms(3600), ms(6900), 32*mb, 100*kb)}},
			since: 3000, blockAt: 3600, absorbed: 2 * mb, accepted: 2*mb - 20*kb, delayMsec: 600,
		},
		{
			// The same with no later block: the one there is.
			name: "only a block with room after", tl: Timeline{Stalls: []Stall{long},
				Blocks: []Block{block(ms(3200), ms(3400), 30*mb+500*kb, -1)}},
			since: 3000, blockAt: 3200, absorbed: 500 * kb, accepted: 500*kb - 20*kb, delayMsec: 200,
		},
		{
			// A block long before the picked stall counts as blocked
			// before the server stopped.
			name: "blocked before", tl: Timeline{Stalls: []Stall{long, later},
				Blocks: []Block{block(ms(500), ms(700), 5*mb, -1), block(ms(8100), ms(8900), 41*mb, 100*kb)}},
			since: 8000, blockAt: 8100, absorbed: 1 * mb, accepted: 1 * mb, before: 1, delayMsec: 100,
		},
		{
			// A later gap in the acks whose block found 500 kB in the
			// pipe, a quarter of the 2 MB the long stall held with no
			// write blocked: the path had room, so the block is set
			// aside and the long stall, unblocked, is the view.
			name: "later block with room", tl: Timeline{Stalls: []Stall{long, later},
				Blocks: []Block{block(ms(8100), ms(8400), 40*mb+500*kb, 100*kb)}},
			since: 3000, blockAt: -1, absorbed: 2 * mb, accepted: 2*mb - 20*kb, asideAt: 8100,
		},
		{
			// The same gap with the pipe as full as the long stall left
			// it (half of it is the margin): the path full, a block.
			name: "later block, path full", tl: Timeline{Stalls: []Stall{long, later},
				Blocks: []Block{block(ms(8100), ms(8400), 42*mb, 100*kb)}},
			since: 8000, blockAt: 8100, absorbed: 2 * mb, accepted: 2 * mb, delayMsec: 100,
		},
		{
			// A write of 4 MiB in progress when the server stopped:
			// the acks had passed what the writes before it wrote,
			// so those say nothing was in the pipe; the 500 kB the
			// kernel held in this client's socket during the block
			// were written and not read (a lower bound).
			name: "large write in progress", tl: Timeline{Stalls: []Stall{stall(ms(2000), ms(6000), 18*mb, 18*mb, 0)},
				Blocks: []Block{block(ms(1900), ms(6100), 16*mb, 500*kb)}},
			since: 2000, blockAt: 1900, absorbed: 500 * kb, accepted: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cv := pick(tt.tl, resolution)
			if cv.stop.at != ms(tt.since) || cv.stall.Since != ms(tt.since) {
				t.Errorf("stall at %v (stop %v), want %d ms", cv.stall.Since, cv.stop.at, tt.since)
			}
			switch {
			case tt.blockAt < 0 && cv.block != nil:
				t.Errorf("block at %v, want none", cv.block.Began)
			case tt.blockAt >= 0 && (cv.block == nil || cv.block.Began != ms(tt.blockAt)):
				t.Errorf("block %+v, want one at %d ms", cv.block, tt.blockAt)
			}
			eqInt(t, "absorbed", cv.absorbed, tt.absorbed)
			eqInt(t, "accepted", cv.accepted, tt.accepted)
			eqInt(t, "blocked before", int64(cv.blockedBefore), int64(tt.before))
			switch {
			case tt.asideAt == 0 && cv.aside != nil:
				t.Errorf("set aside %+v, want none", cv.aside.block)
			case tt.asideAt != 0 && (cv.aside == nil || cv.aside.block.Began != ms(tt.asideAt)):
				t.Errorf("set aside %+v, want a block at %d ms", cv.aside, tt.asideAt)
			}
			if cv.aside != nil {
				eqInt(t, "aside's later stall in the pipe", cv.aside.later, tt.later)
			}
			if cv.delay != ms(tt.delayMsec) {
				t.Errorf("delay %v, want %d ms", cv.delay, tt.delayMsec)
			}
		})
	}
}
