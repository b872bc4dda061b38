package verdict

// classify decides the outcome of a stalled run, and sets the figures
// that belong to it: blocked when at least half the stalled connections'
// writes blocked, else absorbed (and then the absorbed bytes are a lower
// bound).
func classify(v *Verdict, a aggregated) {
	if a.blocked*2 < a.views {
		v.Outcome = OutcomeAbsorbed
		v.AbsorbedIsLowerBound = true
		return
	}
	v.Outcome = OutcomeBlocked
	v.WritesBlockedAtSeconds = ptr(median(a.blockedAt).Seconds())
	v.BlockDelaySeconds = ptr(median(a.delays).Seconds())
	if len(a.sendQueues) > 0 {
		own := median(a.sendQueues)
		v.OwnSendQueueBytes = ptr(own)
		v.BeyondClientBytes = ptr(max(*v.AbsorbedBytes-own, 0))
	}
}

// confidence is the verdict's confidence from its doubts: none is high,
// one medium, more low.
func confidence(doubts int) string {
	switch {
	case doubts <= 0:
		return High
	case doubts == 1:
		return Medium
	}
	return Low
}
