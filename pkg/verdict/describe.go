package verdict

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

// notes collects a verdict's reasons, in order, and the doubts they
// carry: each doubt lowers the confidence one step.
type notes struct {
	reasons []string
	doubts  int
}

// add notes a reason that carries doubt doubts.
func (n *notes) add(doubt int, format string, a ...any) {
	n.doubts += doubt
	n.reasons = append(n.reasons, fmt.Sprintf(format, a...))
}

// finish puts the reasons and the confidence into v.
func (n *notes) finish(v Verdict) Verdict {
	v.Reasons = append(v.Reasons, n.reasons...)
	v.Confidence = confidence(n.doubts)
	return v
}

// resolution notes how precisely the acks tell when the server stopped.
func (n *notes) resolution(ackInterval, resolution time.Duration) {
	switch {
	case ackInterval == 0:
		n.add(1, "too few acks to measure how often they come; assumed every %s", seconds(resolution.Seconds()))
	case ackInterval > 250*time.Millisecond:
		n.add(1, "acks moved only every %s, so when the server stopped is known only to within that", seconds(ackInterval.Seconds()))
	default:
		n.add(0, "acks moved every %s while the server read", seconds(ackInterval.Seconds()))
	}
}

// stop notes how precisely the stop is known: exactly in bytes (the
// server's last ack), in time only to within the gap around it.
func (n *notes) stop(v Verdict, resolution time.Duration) {
	within := time.Duration(*v.ServerStoppedWithinSeconds * float64(time.Second))
	if within <= 0 {
		within = resolution
	}
	n.add(0, "the server stopped after reading exactly %s (%d bytes, its last ack); when, is known to within %s (between the acks around it), seen one path latency late",
		config.HumanBytes(float64(*v.ServerReadAtStopBytes)), *v.ServerReadAtStopBytes, seconds(within.Seconds()))
}

// waits notes what the write calls waited for, when they waited long: a
// path that kept flowing (throughput), or a stopped server (a stall). The
// times are summed over the connections, and said so.
func (n *notes) waits(v Verdict, p Params) {
	conns := max(v.Connections, 1)
	runTime := p.End.Seconds() * float64(conns)
	if runTime <= 0 || v.WaitedFlowingSeconds < 0.1*runTime {
		return
	}
	n.add(0, "write calls waited while acks kept moving, %s, %s: the path's throughput set the pace, not a stall",
		inAll(v.WaitedFlowingSeconds, p.units(v)), shareOf(v.WaitedFlowingSeconds/runTime, conns))
}

// inAll is a time summed over the runs, in words: "2.5 s", or "in all
// 9.96 s over 4 connections, 2.49 s per connection" ("over 8 streams on
// 2 connections, ... per stream").
func inAll(secs float64, u Units) string {
	if u.Runs <= 1 {
		return seconds(secs)
	}
	return fmt.Sprintf("in all %s %s, %s %s", seconds(secs), u.Over(), seconds(secs/float64(u.Runs)), u.Per())
}

// shareOf is a share of the run, "20% of the run", or "20% of the run
// each" for several connections.
func shareOf(share float64, conns int) string {
	if conns <= 1 {
		return fmt.Sprintf("%.0f%% of the run", 100*share)
	}
	return fmt.Sprintf("%.0f%% of the run each", 100*share)
}

// path notes what the client knows of the path, and so whose kernel its
// zero windows are: the bp-relays the server echoed, else what the
// addresses say, else the echoed path alone.
func (n *notes) path(v Verdict, addrs addressCount) {
	if v.Via != nil && len(*v.Via) > 0 {
		n.add(0, "the path, as the server echoed it: this client -> %s -> server; the window this client sees is its peer's, %s's, not the server's", strings.Join(*v.Via, " -> "), (*v.Via)[0])
		return
	}
	if n.addressPath(v, addrs) {
		return
	}
	if v.Via == nil {
		n.add(0, "the server did not echo the path (an older server, or no ack): this client's peer, whose window it sees, may be a hop rather than the server")
		return
	}
	n.add(0, "no bp-relay on the path (the server's first ack said so): this client's peer is the server, unless a proxy that does not name itself (HAProxy, nginx) sits in between")
}

// describeNothing is the summary of a run that wrote nothing.
func describeNothing(n *notes) string {
	n.add(2, "no payload written")
	return "the client wrote nothing, so there is nothing to judge"
}

// describeNotStalled is the summary of a run whose server never stopped.
func describeNotStalled(n *notes, p Params, resolution time.Duration, blocksWithoutStall int, acks int64) string {
	if acks == 0 {
		n.add(2, "no ack arrived at all")
		return "no ack came from the server, so whether it read is unknown (a peer that does not send acks, or a run shorter than the first ack)"
	}
	s := fmt.Sprintf("the server kept reading: its acks never stopped moving for long while bytes were waiting (acks every %s)", seconds(resolution.Seconds()))
	if blocksWithoutStall > 0 {
		s += fmt.Sprintf("; yet %d write call(s) blocked for %s or more: the server, or the path, reads slower than this client writes", blocksWithoutStall, seconds(p.StallThreshold.Seconds()))
		n.add(0, "writes blocked while acks kept moving: a slow reader or a slow path, not a stopped one")
	}
	n.add(0, "no stall: acks kept moving whenever bytes were unacknowledged")
	return s
}

// describeStalled is the summary of a run whose server stopped, and its
// reasons: the outcome's, then the doubts any stalled run may have.
func describeStalled(n *notes, v Verdict, a aggregated, p Params, resolution time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "the server stopped reading at %s", seconds(*v.ServerStoppedAtSeconds))
	if u := p.units(v); v.Connections > 1 {
		fmt.Fprintf(&b, " (%d of %s; figures %s, the median)", a.views, strings.TrimPrefix(u.Over(), "over "), u.Per())
	}
	if v.Outcome == OutcomeBlocked {
		describeBlocked(&b, n, v, a, p)
	} else {
		describeAbsorbed(&b, n, v, a, p)
	}
	if v.ServerResumedAtSeconds != nil {
		fmt.Fprintf(&b, "; the server resumed at %s", seconds(*v.ServerResumedAtSeconds))
	}
	if a.notResumed > 0 {
		fmt.Fprintf(&b, "; it had not resumed reading when the run ended")
	}
	if v.Outcome == OutcomeAbsorbed && len(a.asides) > 0 {
		x := a.asides[0]
		fmt.Fprintf(&b, "; a write blocked at %s, in a %s gap in the acks, with only %s in the pipe: the path had room, so not this stop's backpressure",
			seconds(x.block.Began.Seconds()), seconds((x.stall.Until - x.stall.Since).Seconds()), config.HumanBytes(float64(x.inPipe())))
	}
	n.stop(v, resolution)
	stalledDoubts(n, v, a, resolution, p.units(v))
	return b.String()
}

// describeBlocked writes how the client's writes blocked, and notes why
// the figures are as precise as they are.
func describeBlocked(b *strings.Builder, n *notes, v Verdict, a aggregated, p Params) {
	absorbed := config.HumanBytes(float64(*v.AbsorbedBytes))
	if a.inSocketOnly > 0 {
		absorbed = "at least " + absorbed
		n.add(1, "%s blocked in a write of up to %s, whose bytes count only when it returns, with the server's acks past the writes before it: what the path held then is at least what this client's socket held (its send queue), the rest of the path unseen",
			p.units(v).Count(a.inSocketOnly), config.HumanBytes(float64(a.payload)))
	}
	if delay := *v.BlockDelaySeconds; delay == 0 {
		fmt.Fprintf(b, "; this client's writes were already blocked then, with %s written but not yet read by the server", absorbed)
		n.add(0, "writes were blocked before the server stopped: the path was already full")
	} else {
		fmt.Fprintf(b, "; this client's writes first blocked %s later, after %s more had been accepted; %s were then written but not read by the server",
			seconds(delay), config.HumanBytes(float64(*v.AcceptedAfterStopBytes)), absorbed)
	}
	switch {
	case v.OwnSendQueueBytes != nil && a.inSocketOnly > 0:
		fmt.Fprintf(b, ": about %s in this client's own socket buffer, what was further along the path unseen",
			config.HumanBytes(float64(*v.OwnSendQueueBytes)))
		n.add(0, "the kernel's send queue was read while the write was blocked")
	case v.OwnSendQueueBytes != nil:
		fmt.Fprintf(b, ": about %s in this client's own socket buffer, the rest (%s) further along the path",
			config.HumanBytes(float64(*v.OwnSendQueueBytes)), config.HumanBytes(float64(*v.BeyondClientBytes)))
		n.add(0, "the kernel's send queue was read while the write was blocked")
	case a.blockedNoKernel > 0:
		n.add(1, "kernel socket statistics not read (%s): how much of it sat in this client's own socket is unknown", orDefault(p.KernelReason, "not available"))
	case a.blockedNoSample > 0:
		n.add(1, "no kernel sample fell inside the blocked write: how much sat in this client's own socket is unknown")
	}
	if a.payload > 0 {
		n.add(0, "bytes at the moment of blocking are known to within one write (%s)", config.HumanBytes(float64(a.payload)))
	}
	if a.windowOpen > 0 {
		n.add(1, "%s blocked with the next hop's window open all through the stall (the kernel read while the write was blocked, no zero window): the write waited on bytes still on their way, the path's pace, not on a window the stopped server had closed, so this may not be the stop's backpressure yet",
			p.units(v).Count(a.windowOpen))
	}
	if a.blocked < a.views {
		n.add(1, "%ss disagree: %d of the %d whose server stopped blocked, the others did not", p.units(v).Noun(), a.blocked, a.views)
	}
}

// describeAbsorbed writes that the client never blocked, and notes what
// that tells about the path.
func describeAbsorbed(b *strings.Builder, n *notes, v Verdict, a aggregated, p Params) {
	when := "" // a block set aside (told after the resumption) was not during the stop
	if len(a.asides) > 0 {
		when = " during it"
	}
	fmt.Fprintf(b, "; this client never blocked%s: at least %s were absorbed between it and the server", when, config.HumanBytes(float64(*v.AbsorbedBytes)))
	n.add(0, "writes never blocked for %s or more during the stall, so the path's capacity is at least what it took", seconds(p.StallThreshold.Seconds()))
	if a.blocked > 0 {
		n.add(1, "%ss disagree: %d of the %d whose server stopped blocked", p.units(v).Noun(), a.blocked, a.views)
	}
	if a.kernelMissing > 0 && p.KernelReason != "" {
		n.add(0, "kernel socket statistics not read (%s)", p.KernelReason)
	}
}

// stalledDoubts notes what any stalled run may leave open: a server that
// never resumed, writes still blocked, no ack at all, connections that
// disagree, more stalls than the verdict describes.
func stalledDoubts(n *notes, v Verdict, a aggregated, resolution time.Duration, u Units) {
	if a.notResumed > 0 {
		n.add(1, "the server had not resumed when the run ended (%s), so nothing confirms a stop rather than acks held back", u.Count(a.notResumed))
	}
	if a.ongoing > 0 {
		n.add(0, "%d write call(s) still blocked when the run ended", a.ongoing)
	}
	if a.noAck > 0 {
		n.add(1, "no ack arrived before the stall on %s: the server may never have read, or acks do not come back", u.Count(a.noAck))
	}
	if spread(a.absorbed) > 2 {
		n.add(1, "%ss disagree: absorbed bytes range from %s to %s", u.Noun(), config.HumanBytes(float64(slices.Min(a.absorbed))), config.HumanBytes(float64(slices.Max(a.absorbed))))
	}
	if len(a.stopped) > 1 && slices.Max(a.stopped)-slices.Min(a.stopped) > 2*resolution+time.Second {
		n.add(0, "%ss saw the server stop at different times, from %s to %s", u.Noun(), seconds(slices.Min(a.stopped).Seconds()), seconds(slices.Max(a.stopped).Seconds()))
	}
	if v.Stalls > a.views {
		n.add(0, "%d stalls in all; this verdict describes, %s, the first that made a write block with the path full, else the longest", v.Stalls, u.Per())
	}
	if a.blockedBefore > 0 {
		n.add(0, "%d write call(s) had blocked before the server stopped", a.blockedBefore)
	}
	asides(n, a.asides, u)
}

// asides notes the writes that blocked in a gap in the acks with the path
// not full: counted in the time waited in stalls, but not taken as the
// server's stop, since an earlier stall had held twice as much or more
// with no write blocked, or a later, longer one blocked with twice as
// much in the pipe or more.
func asides(n *notes, xs []unfilledBlock, u Units) {
	if len(xs) == 0 {
		return
	}
	x := xs[0]
	if x.later > 0 {
		n.add(0, "%s had a write block in a gap in the acks before the path was full (the first: at %s for %s, in a %s gap from %s, %s in the pipe, under half the %s a later stall twice as long had in it when its write blocked): the path's queues were not yet full, so something on the way (the path, or this client itself) stood still: not taken as the server's stop",
			u.Count(len(xs)), seconds(x.block.Began.Seconds()), seconds((x.block.Ended - x.block.Began).Seconds()),
			seconds((x.stall.Until - x.stall.Since).Seconds()), seconds(x.stall.Since.Seconds()),
			config.HumanBytes(float64(x.inPipe())), config.HumanBytes(float64(x.later)))
		return
	}
	n.add(0, "%s had a write block in a gap in the acks with the path not full (the first: at %s for %s, in a %s gap from %s, %s in the pipe, under half the %s an earlier stall held with no write blocked): a stopped server cannot block writes into a path with room, so something on the way (the path, or this client itself) stood still: not taken as the server's stop",
		u.Count(len(xs)), seconds(x.block.Began.Seconds()), seconds((x.block.Ended - x.block.Began).Seconds()),
		seconds((x.stall.Until - x.stall.Since).Seconds()), seconds(x.stall.Since.Seconds()),
		config.HumanBytes(float64(x.inPipe())), config.HumanBytes(float64(x.held)))
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// seconds prints seconds for people: "3.0 s", "0.40 s", "80 ms".
func seconds(s float64) string {
	switch {
	case s >= 10:
		return fmt.Sprintf("%.0f s", s)
	case s >= 1:
		return fmt.Sprintf("%.1f s", s)
	case s >= 0.1:
		return fmt.Sprintf("%.2f s", s)
	}
	return fmt.Sprintf("%.0f ms", s*1000)
}

// Short is the verdict in a few words, for a table column.
func (v Verdict) Short() string {
	switch v.Outcome {
	case OutcomeBlocked:
		s := "blocked"
		if v.BlockDelaySeconds != nil {
			s += " +" + seconds(*v.BlockDelaySeconds)
		}
		if v.AbsorbedBytes != nil {
			s += ", " + config.HumanBytes(float64(*v.AbsorbedBytes)) + " absorbed"
		}
		return s + " (" + v.Confidence + ")"
	case OutcomeAbsorbed:
		return "never blocked, >= " + config.HumanBytes(float64(*v.AbsorbedBytes)) + " absorbed (" + v.Confidence + ")"
	case OutcomeNotStalled:
		return "server never stalled (" + v.Confidence + ")"
	}
	return v.Outcome
}
