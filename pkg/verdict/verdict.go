package verdict

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

// Timeline is what the client saw on one writing connection, in the terms
// the verdict needs. Times are offsets from the run's start.
type Timeline struct {
	// Written and Acked are the connection's totals at the end.
	Written, Acked int64
	// Acks is how many acks moved the count; AckInterval the typical time
	// between two of them while bytes were unacknowledged (0: too few seen).
	Acks        int
	AckInterval time.Duration
	// Stalls are the times ack progress stopped for long while bytes were
	// unacknowledged, in order (at most maxStalls; StallsDropped more).
	Stalls        []Stall
	StallsDropped int
	// Blocks are the write calls blocked for at least the stall threshold,
	// in order (at most maxBlocks; BlocksDropped more).
	Blocks        []Block
	BlocksDropped int
	// Kernel: this connection's socket statistics could be read.
	Kernel bool
}

// Stall is one period without ack progress while bytes were unacknowledged:
// as the client sees it, the server had stopped reading.
type Stall struct {
	// Since is when the server stopped, as well as the client can tell:
	// one ack interval before the last ack that moved (LastAckAt), but not
	// before the one before it; or, when every byte had been acknowledged,
	// when the next one was written.
	Since time.Duration
	// LastAckAt is when the last ack that moved arrived (-1: the stall
	// began with a write into an empty pipe).
	LastAckAt time.Duration
	// Until is when ack progress came back (Resumed) or the last time the
	// client looked (the end of the run).
	Until   time.Duration
	Resumed bool
	// AckedBytes is what the server had read when it stopped;
	// WrittenAtSince what the client had written by Since (interpolated
	// between the two acks around it).
	AckedBytes, WrittenAtSince int64
	// PeakInPipe is the most bytes written and not acknowledged during the
	// stall: what the path held at least.
	PeakInPipe int64
	// NoAckYet: no ack had arrived at all before this stall.
	NoAckYet bool
	// PeerWindowZeroAt is when the kernel first saw the next hop advertise
	// a zero window during the stall (-1: not seen, or not sampled).
	PeerWindowZeroAt time.Duration
}

// Block is one write call blocked for at least the stall threshold.
type Block struct {
	// Began is when the write call started; Ended when it returned (for an
	// Ongoing block, when it was last seen).
	Began, Ended time.Duration
	Ongoing      bool
	// WrittenBefore is the bytes accepted before this call.
	WrittenBefore int64
	// Size is the bytes the call was to write: how precisely the bytes at
	// the moment of blocking are known.
	Size int64
	// SendQueue is the largest send queue (SIOCOUTQ) the kernel showed
	// while the call was blocked (-1: not read).
	SendQueue int64
}

// Params are the run's settings Compute needs.
type Params struct {
	// End is the run's length, from its start.
	End time.Duration
	// StallThreshold is the blocked time from which a write counts as
	// blocked.
	StallThreshold time.Duration
	// KernelReason, when not empty, says why the kernel's socket
	// statistics were not read (sampling off, unsupported system).
	KernelReason string
}

// Outcomes of a verdict.
const (
	// OutcomeBlocked: the server stopped reading and the client's writes
	// blocked because of it.
	OutcomeBlocked = "blocked"
	// OutcomeAbsorbed: the server stopped reading, the client never
	// blocked: the path absorbed everything it wrote meanwhile.
	OutcomeAbsorbed = "absorbed"
	// OutcomeNotStalled: the server never stopped reading for long.
	OutcomeNotStalled = "not_stalled"
	// OutcomeUnknown: nothing to judge (no payload written).
	OutcomeUnknown = "unknown"
)

// Confidence levels.
const (
	High   = "high"
	Medium = "medium"
	Low    = "low"
)

// Verdict is the client's account of whether the server's slowness reached
// it, and how much the path absorbed on the way. Its JSON form is the
// `verdict` object of bp-client's --output json report. Byte and time
// figures are per connection (with several connections, the median over
// the connections whose server stopped); times are seconds from the run's
// start, as the client's clock saw them.
type Verdict struct {
	Outcome    string   `json:"outcome"`
	Summary    string   `json:"summary"`
	Confidence string   `json:"confidence"`
	Reasons    []string `json:"reasons"`

	Connections        int `json:"connections"`
	StalledConnections int `json:"stalled_connections"`
	BlockedConnections int `json:"blocked_connections"`
	// AckIntervalSeconds is how often acks moved while the server read:
	// the resolution of "when the server stopped".
	AckIntervalSeconds float64 `json:"ack_interval_seconds"`
	Stalls             int     `json:"stalls"`

	ServerStoppedAtSeconds *float64 `json:"server_stopped_at_seconds,omitempty"`
	ServerResumedAtSeconds *float64 `json:"server_resumed_at_seconds,omitempty"`
	WritesBlockedAtSeconds *float64 `json:"writes_blocked_at_seconds,omitempty"`
	// BlockDelaySeconds is from the server stopping to the client's writes
	// blocking (0 when they were blocked already).
	BlockDelaySeconds *float64 `json:"block_delay_seconds,omitempty"`
	// AcceptedAfterStopBytes: bytes the client's writes accepted after it
	// saw the server stop, until they blocked (or the stall ended).
	AcceptedAfterStopBytes *int64 `json:"accepted_after_stop_bytes,omitempty"`
	// AbsorbedBytes: bytes written and not read by the server when the
	// writes blocked; when they never blocked, the most seen during the
	// stall (then AbsorbedIsLowerBound: the path could have held more).
	AbsorbedBytes        *int64 `json:"absorbed_bytes,omitempty"`
	AbsorbedIsLowerBound bool   `json:"absorbed_is_lower_bound,omitempty"`
	// TotalAbsorbedBytes is AbsorbedBytes summed over connections.
	TotalAbsorbedBytes *int64 `json:"total_absorbed_bytes,omitempty"`
	// OwnSendQueueBytes: of AbsorbedBytes, what sat in this client's own
	// socket (the kernel's send queue while the write was blocked);
	// BeyondClientBytes the rest, further along the path.
	OwnSendQueueBytes *int64 `json:"own_send_queue_bytes,omitempty"`
	BeyondClientBytes *int64 `json:"beyond_client_bytes,omitempty"`
	// PeerWindowClosedAtSeconds: when the next hop (the server on a direct
	// path) first advertised a zero window during the stall.
	PeerWindowClosedAtSeconds *float64 `json:"peer_window_closed_at_seconds,omitempty"`
}

// connView is one connection's answer, before aggregation.
type connView struct {
	stall     *Stall
	block     *Block // the first block of the stall, nil if none
	absorbed  int64
	accepted  int64
	delay     time.Duration
	sendQueue int64 // -1 unknown
	kernel    bool
}

// slack is how far before the stall's start a block may begin and still
// count as caused by it: the stop is known only to within an ack interval.
func slack(ackInterval time.Duration) time.Duration { return ackInterval }

// Compute judges a run from its connections' timelines. It is a pure
// function: same timelines, same verdict.
func Compute(tls []Timeline, p Params) Verdict {
	v := Verdict{Connections: len(tls), Reasons: []string{}}
	var doubts int
	reason := func(doubt int, format string, a ...any) {
		doubts += doubt
		v.Reasons = append(v.Reasons, fmt.Sprintf(format, a...))
	}

	var written, acks int64
	var gaps []time.Duration
	for _, tl := range tls {
		written += tl.Written
		acks += int64(tl.Acks)
		if tl.AckInterval > 0 {
			gaps = append(gaps, tl.AckInterval)
		}
		v.Stalls += len(tl.Stalls) + tl.StallsDropped
	}
	ackInterval := medianDuration(gaps)
	v.AckIntervalSeconds = ackInterval.Seconds()
	if written == 0 {
		v.Outcome, v.Confidence = OutcomeUnknown, Low
		v.Summary = "the client wrote nothing, so there is nothing to judge"
		reason(2, "no payload written")
		return v
	}
	resolution := ackInterval
	if resolution == 0 {
		resolution = 100 * time.Millisecond
		reason(1, "too few acks to measure how often they come; assumed every %s", seconds(resolution.Seconds()))
	} else if ackInterval > 250*time.Millisecond {
		reason(1, "acks moved only every %s, so when the server stopped is known only to within that", seconds(ackInterval.Seconds()))
	} else {
		reason(0, "acks moved every %s while the server read: the stop is known to within that, seen one path latency late", seconds(ackInterval.Seconds()))
	}

	// Each connection: its first stall and the first write that blocked
	// during it.
	var views []connView
	var blockedBeforeAny, blocksWithoutStall int
	for _, tl := range tls {
		if len(tl.Stalls) == 0 {
			blocksWithoutStall += len(tl.Blocks) + tl.BlocksDropped
			continue
		}
		// The stall that mattered: the first that made a write block,
		// else the longest.
		var cv connView
		longest := -1
		for i := range tl.Stalls {
			st := tl.Stalls[i]
			if b := blockOf(tl.Blocks, st, resolution); b != nil {
				cv = connView{stall: &st, block: b}
				break
			}
			if longest < 0 || st.Until-st.Since > tl.Stalls[longest].Until-tl.Stalls[longest].Since {
				longest = i
			}
		}
		if cv.stall == nil {
			st := tl.Stalls[longest]
			cv.stall = &st
		}
		st := *cv.stall
		cv.sendQueue, cv.kernel, cv.absorbed = -1, tl.Kernel, st.PeakInPipe
		for _, b := range tl.Blocks {
			if b.Ended < st.Since-slack(resolution) {
				blockedBeforeAny++
			}
		}
		if cv.block != nil {
			b := cv.block
			cv.delay = max(b.Began-st.Since, 0)
			cv.absorbed = max(b.WrittenBefore-st.AckedBytes, 0)
			cv.accepted = max(b.WrittenBefore-st.WrittenAtSince, 0)
			cv.sendQueue = b.SendQueue
		} else {
			cv.accepted = max(st.AckedBytes+st.PeakInPipe-st.WrittenAtSince, 0)
		}
		views = append(views, cv)
	}
	v.StalledConnections = len(views)

	if len(views) == 0 {
		v.Outcome = OutcomeNotStalled
		v.Summary = fmt.Sprintf("the server kept reading: its acks never stopped moving for long while bytes were waiting (acks every %s)", seconds(resolution.Seconds()))
		if blocksWithoutStall > 0 {
			v.Summary += fmt.Sprintf("; yet %d write call(s) blocked for %s or more: the server, or the path, reads slower than this client writes", blocksWithoutStall, seconds(p.StallThreshold.Seconds()))
			reason(0, "writes blocked while acks kept moving: a slow reader or a slow path, not a stopped one")
		}
		reason(0, "no stall: acks kept moving whenever bytes were unacknowledged")
		if acks == 0 {
			reason(2, "no ack arrived at all")
		}
		v.Confidence = confidence(doubts)
		return v
	}

	// Aggregate: the typical connection (median), counts, sums.
	var stopped, resumed, blockedAt, delays, peerZero []time.Duration
	var absorbed, accepted, sendQueues []int64
	var totalAbsorbed int64
	var noAck, notResumed, ongoing, kernelMissing, blockedNoSample int
	blockedKernel := 0
	var payload int64
	for _, cv := range views {
		st := cv.stall
		stopped = append(stopped, st.Since)
		if st.Resumed {
			resumed = append(resumed, st.Until)
		} else {
			notResumed++
		}
		if st.NoAckYet {
			noAck++
		}
		if st.PeerWindowZeroAt >= 0 {
			peerZero = append(peerZero, st.PeerWindowZeroAt)
		}
		absorbed = append(absorbed, cv.absorbed)
		accepted = append(accepted, cv.accepted)
		totalAbsorbed += cv.absorbed
		if !cv.kernel {
			kernelMissing++
		}
		if cv.block != nil {
			v.BlockedConnections++
			blockedAt = append(blockedAt, cv.block.Began)
			delays = append(delays, cv.delay)
			payload = max(payload, cv.block.Size)
			if cv.block.Ongoing {
				ongoing++
			}
			if cv.sendQueue >= 0 {
				sendQueues = append(sendQueues, min(cv.sendQueue, cv.absorbed))
			} else if cv.kernel {
				blockedNoSample++
			} else {
				blockedKernel++
			}
		}
	}
	v.ServerStoppedAtSeconds = ptr(medianDuration(stopped).Seconds())
	if len(resumed) > 0 {
		v.ServerResumedAtSeconds = ptr(medianDuration(resumed).Seconds())
	}
	if len(peerZero) > 0 {
		v.PeerWindowClosedAtSeconds = ptr(medianDuration(peerZero).Seconds())
	}
	v.AbsorbedBytes = ptr(medianInt(absorbed))
	v.AcceptedAfterStopBytes = ptr(medianInt(accepted))
	v.TotalAbsorbedBytes = ptr(totalAbsorbed)
	n := len(views)
	several := len(tls) > 1

	stopAt := seconds(*v.ServerStoppedAtSeconds)
	var b strings.Builder
	fmt.Fprintf(&b, "the server stopped reading at %s", stopAt)
	if several {
		fmt.Fprintf(&b, " (%d of %d connections; figures per connection, the median)", n, len(tls))
	}
	switch {
	case v.BlockedConnections*2 >= n:
		v.Outcome = OutcomeBlocked
		v.WritesBlockedAtSeconds = ptr(medianDuration(blockedAt).Seconds())
		delay := medianDuration(delays)
		v.BlockDelaySeconds = ptr(delay.Seconds())
		if delay == 0 {
			fmt.Fprintf(&b, "; this client's writes were already blocked then, with %s written but not yet read by the server",
				config.HumanBytes(float64(*v.AbsorbedBytes)))
			reason(0, "writes were blocked before the server stopped: the path was already full")
		} else {
			fmt.Fprintf(&b, "; this client's writes first blocked %s later, after %s more had been accepted; %s were then written but not read by the server",
				seconds(delay.Seconds()), config.HumanBytes(float64(*v.AcceptedAfterStopBytes)), config.HumanBytes(float64(*v.AbsorbedBytes)))
		}
		if len(sendQueues) > 0 {
			own := medianInt(sendQueues)
			v.OwnSendQueueBytes = ptr(own)
			v.BeyondClientBytes = ptr(max(*v.AbsorbedBytes-own, 0))
			fmt.Fprintf(&b, ": about %s in this client's own socket buffer, the rest (%s) further along the path",
				config.HumanBytes(float64(own)), config.HumanBytes(float64(*v.BeyondClientBytes)))
			reason(0, "the kernel's send queue was read while the write was blocked")
		} else if blockedKernel > 0 {
			reason(1, "kernel socket statistics not read (%s): how much of it sat in this client's own socket is unknown", orDefault(p.KernelReason, "not available"))
		} else if blockedNoSample > 0 {
			reason(1, "no kernel sample fell inside the blocked write: how much sat in this client's own socket is unknown")
		}
		if payload > 0 {
			reason(0, "bytes at the moment of blocking are known to within one write (%s)", config.HumanBytes(float64(payload)))
		}
		if v.BlockedConnections < n {
			reason(1, "connections disagree: %d of the %d whose server stopped blocked, the others did not", v.BlockedConnections, n)
		}
	default:
		v.Outcome = OutcomeAbsorbed
		v.AbsorbedIsLowerBound = true
		fmt.Fprintf(&b, "; this client never blocked: at least %s were absorbed between it and the server", config.HumanBytes(float64(*v.AbsorbedBytes)))
		reason(0, "writes never blocked for %s or more during the stall, so the path's capacity is at least what it took", seconds(p.StallThreshold.Seconds()))
		if v.BlockedConnections > 0 {
			reason(1, "connections disagree: %d of the %d whose server stopped blocked", v.BlockedConnections, n)
		}
		if kernelMissing > 0 && p.KernelReason != "" {
			reason(0, "kernel socket statistics not read (%s)", p.KernelReason)
		}
	}
	if v.ServerResumedAtSeconds != nil {
		fmt.Fprintf(&b, "; the server resumed at %s", seconds(*v.ServerResumedAtSeconds))
	}
	if notResumed > 0 {
		fmt.Fprintf(&b, "; it had not resumed reading when the run ended")
		reason(1, "the server had not resumed when the run ended (%d connection(s)), so nothing confirms a stop rather than acks held back", notResumed)
	}
	if ongoing > 0 {
		reason(0, "%d write call(s) still blocked when the run ended", ongoing)
	}
	if noAck > 0 {
		reason(1, "no ack arrived before the stall on %d connection(s): the server may never have read, or acks do not come back", noAck)
	}
	if spread(absorbed) > 2 {
		reason(1, "connections disagree: absorbed bytes range from %s to %s", config.HumanBytes(float64(slices.Min(absorbed))), config.HumanBytes(float64(slices.Max(absorbed))))
	}
	if len(stopped) > 1 && slices.Max(stopped)-slices.Min(stopped) > 2*resolution+time.Second {
		reason(0, "connections saw the server stop at different times, from %s to %s", seconds(slices.Min(stopped).Seconds()), seconds(slices.Max(stopped).Seconds()))
	}
	if v.Stalls > n {
		reason(0, "%d stalls in all; this verdict describes, per connection, the first that made a write block, else the longest", v.Stalls)
	}
	if blockedBeforeAny > 0 {
		reason(0, "%d write call(s) had blocked before the server stopped", blockedBeforeAny)
	}
	v.Summary = b.String()
	v.Confidence = confidence(doubts)
	return v
}

// blockOf is the first write that blocked during the stall: begun after
// it started (within one ack interval before: the stop is known no
// better), or begun before and still blocked well after it started.
func blockOf(blocks []Block, st Stall, resolution time.Duration) *Block {
	for i := range blocks {
		b := blocks[i]
		if b.Began > st.Until {
			break
		}
		if b.Began >= st.Since-slack(resolution) || b.Ongoing || b.Ended >= st.Since+slack(resolution) {
			if b.Ended < st.Since {
				continue
			}
			return &b
		}
	}
	return nil
}

func confidence(doubts int) string {
	switch {
	case doubts <= 0:
		return High
	case doubts == 1:
		return Medium
	}
	return Low
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// spread is the largest over the smallest value (1 when all agree; values
// under 64 KiB count as 64 KiB, so tiny figures do not look like a
// disagreement).
func spread(v []int64) float64 {
	if len(v) < 2 {
		return 1
	}
	lo, hi := max(slices.Min(v), 64<<10), max(slices.Max(v), 64<<10)
	return float64(hi) / float64(lo)
}

func medianDuration(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func medianInt(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func ptr[T any](v T) *T { return &v }

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
