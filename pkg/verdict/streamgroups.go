package verdict

import (
	"fmt"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

// One slow stream among fast ones (--slow-streams K of --streams N): the
// server reads streams 0..K-1 slowly and the others at full speed. Where
// the path keeps the streams apart, the fast ones go on while the slow
// ones are held; where a hop ties them to one buffer (head-of-line
// blocking: a proxy that stops reading the connection when one stream's
// buffer is full), the fast ones are held with them.

// Conclusions of a StreamsTied.
const (
	StreamsApart    = "apart"     // the fast streams went on
	StreamsTiedOn   = "tied"      // the fast streams were held with the slow ones
	StreamsNotShown = "not_shown" // the slow streams were not held: nothing to tell
)

// tiedShare is the share of their time the fast streams must have been
// blocked to count as held with the slow ones. A fast stream beside a
// held one on a path that keeps streams apart waits only for its own
// reader, which reads at full speed: paced writers wait next to none of
// their time (e2e, direct, 4 streams at 3.2 MB/s, the slow one paused 2 s
// of 2.5: the fast ones blocked 2%). Tied by a hop, they wait as long as
// the slow one (the same run through HAProxy 2.6 with h2: 48%, as the
// slow stream's 48%; unpaced beside a 1 MiB/s reader, docs/HTTP2.md,
// their rate fell from 40-140 MB/s to ~1.5). A quarter lies far from
// both, and below the slow streams' share in any run whose pause or slow
// reading is worth the name, so a busy machine does not move a run
// across it; within tiedMargin of it the conclusion is marked unsure.
const (
	tiedShare  = 0.25
	tiedMargin = 0.15
)

// StreamGroup is one group's figures, per stream: the slow streams or
// the fast ones of every connection.
type StreamGroup struct {
	Streams int `json:"streams"`
	// BytesAckedPerSecond is per stream: the bytes the server read.
	BytesAckedPerSecond float64 `json:"bytes_acked_per_second"`
	// BlockedShare is of the group's combined time: blocked seconds summed
	// over its streams / (duration × streams).
	BlockedShare float64 `json:"blocked_share"`
	// StalledShare is the part of BlockedShare spent in stalls (write
	// calls blocked for the stall threshold or longer): the time the
	// streams stood still, which a capture sees as gaps in their DATA. The
	// rest is write calls' own time, which a busy machine makes long.
	StalledShare        float64 `json:"stalled_share"`
	Stalls              int64   `json:"stalls"`
	LongestStallSeconds float64 `json:"longest_stall_seconds"`
}

// StreamGroups are the slow and the fast streams, side by side.
type StreamGroups struct {
	Slow StreamGroup `json:"slow"`
	Fast StreamGroup `json:"fast"`
}

// StreamsTied is whether the fast streams went on while the slow ones
// were held, in words, and how sure that is.
type StreamsTied struct {
	Conclusion string `json:"conclusion"`
	Summary    string `json:"summary"`
	// Sure is false near the threshold, or when the writers were not
	// paced (an unpaced writer waits on its path however free it is).
	Sure bool `json:"sure"`
	// ThresholdBlockedShare is the fast streams' blocked share above
	// which they count as held.
	ThresholdBlockedShare float64 `json:"threshold_blocked_share"`
}

// StreamsTiedOf judges whether the path tied the fast streams to the slow
// ones. paced says the writers kept a --rate: then the fast streams'
// blocked share decides; unpaced writers wait on any path, and only their
// stalls (writes held past the stall threshold) decide, less surely.
func StreamsTiedOf(g StreamGroups, paced bool) *StreamsTied {
	t := &StreamsTied{ThresholdBlockedShare: tiedShare}
	slow, fast := g.Slow, g.Fast
	if slow.BlockedShare < tiedShare && slow.Stalls == 0 {
		t.Conclusion = StreamsNotShown
		t.Summary = fmt.Sprintf("the slow streams were not held (blocked %s of their time, no stall): "+
			"this run does not show whether the path ties streams together (pause the server or slow its reading)", percent(slow.BlockedShare))
		t.Sure = true
		return t
	}
	tied := fast.BlockedShare > tiedShare
	t.Sure = paced && (fast.BlockedShare < tiedShare-tiedMargin || fast.BlockedShare > tiedShare+tiedMargin)
	if !paced {
		tied = fast.Stalls >= int64(max(fast.Streams, 1))
	}
	rates := fmt.Sprintf("%s/s each against the slow ones' %s/s", config.HumanBytes(fast.BytesAckedPerSecond), config.HumanBytes(slow.BytesAckedPerSecond))
	if tied {
		t.Conclusion = StreamsTiedOn
		t.Summary = fmt.Sprintf("the fast streams were held with the slow ones (blocked %s of their time, %d stall(s), %s): "+
			"something on the path ties the streams together (head-of-line blocking), "+
			"e.g. a proxy that stops reading the connection when one stream's buffer is full", percent(fast.BlockedShare), fast.Stalls, rates)
	} else {
		t.Conclusion = StreamsApart
		t.Summary = fmt.Sprintf("the fast streams went on while the slow ones were held (fast blocked %s of their time, %d stall(s), %s): "+
			"the path keeps streams apart (stream-level backpressure)", percent(fast.BlockedShare), fast.Stalls, rates)
	}
	t.Summary += sureWords(t.Sure, paced)
	return t
}

// sureWords is the caveat of a conclusion that is not sure.
func sureWords(sure, paced bool) string {
	switch {
	case sure:
		return ""
	case !paced:
		return " (unsure: the writers had no --rate, so their blocked time says little; decided by the fast streams' stalls, at least one each counts as held)"
	}
	return fmt.Sprintf(" (unsure: the fast streams' blocked share is near the %s threshold)", percent(tiedShare))
}

func percent(share float64) string { return fmt.Sprintf("%.0f%%", share*100) }
