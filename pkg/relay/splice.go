package relay

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// A passthrough between two framed TCP sockets moves the payload of large
// data frames with splice(2) (flow.Splice): socket to a kernel pipe, pipe
// to the other socket, never through the relay's memory. Per frame:
//
//	recv(MSG_PEEK) the 5-byte header  ->  splice header + payload into the pipe (<= 32 KiB, within one read)
//	->  splice the pipe into dst (the write: timed, counted; it waits while dst is full)
//
// The relay follows the frames as before: the peeked header goes through
// the FrameScanner, the spliced payload is counted with Skip, and acks,
// fins and small frames still go through the copy path (one read, one
// write), where their bytes are seen. The pipe is within the stream
// buffer's one read: a Fill asks for at most Config.ReadSize bytes
// (spliceFill: 48 KiB of a 64 KiB read) and the pipe is drained before
// the next Fill, so the relay holds no more than before, and the reading
// pause while the write blocks is what it was.

// spliceMin is the smallest rest of a data frame the relay splices: below
// it, a peek and two splices cost more than one read and one write that
// carry several frames at once.
const spliceMin = 16 << 10

// spliceFill is the most payload one Fill moves into the pipe: a 64 KiB
// frame goes through in two pieces, 48 and 16 KiB. The bound makes the
// relay hold less than one read, and a smaller pipe's worth cost less per
// byte than a whole read's on both VMs of docs/BENCHMARKS.md: on the
// Xeon VM ("The relay's cost per byte on the Xeon VM") 64 KiB Fills cost
// the hop 0.66 to 0.79 s/GB where 32 KiB cost 0.50 to 0.59. Between 32
// and 48 KiB the VMs disagree: on the Xeon VM 48 KiB moved 0.90 times 32
// KiB's bytes, on the AMD EPYC VM 1.05 to 1.25 times at 0.78 to 0.93 of
// the CPU per relayed GB in six runs ("The relay's splice fill on the
// EPYC VM"). 48 KiB, for the EPYC VM, the project's machine since, where
// it decides the relay's quiet targets; on the Xeon VM, measured since,
// bp-relay / socat holds at 48 KiB (1.51 quiet, 1.16 loaded: "Final run").
const spliceFill = 48 << 10

// fillSize is the most payload one Fill of p moves: one read's worth,
// at most spliceFill.
func fillSize(p *pipe) int { return min(p.chunk, spliceFill) }

// spliceNext reports whether the next step splices: the rest of a data
// frame being spliced or of a large one, or, at a frame boundary after
// large frames, the next frame once its header is peeked. It makes the
// pipe on first use.
func (pt *passthrough) spliceNext(p *pipe) bool {
	left := pt.scan.PayloadLeft()
	if left == 0 {
		pt.splicing = false
	}
	atBoundary := !pt.scan.MidFrame()
	if !pt.splicing && left < spliceMin && !(atBoundary && pt.big) {
		return false
	}
	if pt.sp == nil && !pt.tried {
		pt.tried = true
		// Room for one Fill's payload and its frame's header: a frame
		// of exactly that payload is then one Fill.
		pt.sp = flow.NewSplice(pt.srcConn, pt.dstConn, fillSize(p)+flow.FrameHeaderSize)
		if pt.sp != nil {
			pt.sp.OnWait(p.startWrite) // the pause clock starts when a write waits
		}
	}
	return pt.sp != nil && pt.sp.Ready()
}

// copySize is how much the next copy read asks for: up to the end of a
// large data frame when one is under way, so the read ends at a frame
// boundary and the next frame can be spliced; otherwise max.
func (pt *passthrough) copySize(max int) int {
	if pt.sp != nil && pt.big {
		if left := pt.scan.PayloadLeft(); left > 0 {
			return min(left, max)
		}
	}
	return max
}

// sawData notes, after a copy read, whether the data frame it stopped in
// is large.
func (pt *passthrough) sawData() {
	if size := pt.scan.DataSize(); size > 0 {
		pt.big = size >= spliceMin
	}
}

func (pt *passthrough) closeSplice() {
	if pt.sp != nil {
		pt.sp.Close()
	}
}

// spliceStep moves one pipe's worth of a large data frame from src to dst
// (peeking its header first at a frame boundary), with the copy path's
// accounting, and reports whether the relay goes on. A header that is not
// a large data frame's is left in the socket for the copy path.
func (s *session) spliceStep(ctx context.Context, src, dst *side, p *pipe, pt *passthrough, onPayload func(int)) bool {
	if pt.scan.PayloadLeft() == 0 {
		n, err := pt.sp.Peek(pt.hdr[:])
		size, ok := flow.DataFrame(pt.hdr[:n])
		if err != nil || !ok || size < spliceMin {
			// The copy path reads it, and meets the same end or error.
			pt.big = false
			return true
		}
		if err := pt.scan.Scan(pt.hdr[:], onPayload, nil); err != nil {
			s.fail(src.side, err)
			return false
		}
		pt.hdrLeft = flow.FrameHeaderSize
	}
	// At most one Fill's payload (within the buffer's bound of one
	// read), with the header in front of it.
	pt.splicing = true
	n, err := pt.sp.Fill(pt.hdrLeft + min(pt.scan.PayloadLeft(), fillSize(p)))
	if err != nil {
		if err == io.EOF {
			err = fmt.Errorf("read frame: %w", io.ErrUnexpectedEOF)
		}
		s.readEnded(ctx, src, dst, p, err)
		return false
	}
	hdr := min(n, pt.hdrLeft)
	pt.hdrLeft -= hdr
	payload := n - hdr
	pt.scan.Skip(payload)
	if payload > 0 {
		onPayload(payload)
		p.spliced.Add(int64(payload))
	}
	if p.hold(ctx, payload) != nil {
		return false // the connection ends: the bytes go with it
	}
	if pt.steps++; pt.steps%yieldEvery == 0 {
		runtime.Gosched()
	}
	return s.forwardRaw(p, dst, pt, nil, payload, false)
}

// yieldEvery is how many splice steps a reader takes between yields. A
// reader that always finds bytes waiting never parks, so the runtime's
// sysmon preempts it every 10 ms, and each preemption sets sysmon back to
// waking every 20 µs; a yield about every millisecond (16 steps of 64 KiB
// at 1 GB/s) lets sysmon sleep.
const yieldEvery = 16
