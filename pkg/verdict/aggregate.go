package verdict

import (
	"slices"
	"time"
)

// runTally is what every connection of the run adds up to, stalled or not.
type runTally struct {
	written     int64
	acks        int64
	ackInterval time.Duration // the median of the connections' (0: none measured)
	stalls      int
}

// tally adds up the run's connections.
func tally(tls []Timeline) runTally {
	var t runTally
	gaps := make([]time.Duration, 0, len(tls))
	for _, tl := range tls {
		t.written += tl.Written
		t.acks += int64(tl.Acks)
		if tl.AckInterval > 0 {
			gaps = append(gaps, tl.AckInterval)
		}
		t.stalls += len(tl.Stalls) + tl.StallsDropped
	}
	t.ackInterval = median(gaps)
	return t
}

// resolutionOf is how precisely the stop is known: the ack interval, or
// an assumed 100 ms when too few acks came to measure it.
func resolutionOf(ackInterval time.Duration) time.Duration {
	if ackInterval == 0 {
		return 100 * time.Millisecond
	}
	return ackInterval
}

// aggregated is the stalled connections taken together: each figure of
// each connection, for the typical one (the median), and counts and sums.
type aggregated struct {
	views int // the stalled connections

	stopped, resumed, peerZero []time.Duration
	within                     []time.Duration // how precisely each stop is known
	absorbed, accepted         []int64
	readAtStop                 []int64
	totalAbsorbed              int64
	noAck, notResumed          int
	kernelMissing              int
	blockedBefore              int // write calls blocked before their server stopped
	// asides are the writes that blocked in a stall with the path not
	// full (one per connection at most), in order.
	asides []unfilledBlock

	// Of the connections whose writes blocked during the stall:
	blocked         int
	blockedAt       []time.Duration
	delays          []time.Duration
	sendQueues      []int64 // each at most its connection's absorbed bytes
	payload         int64   // the largest blocked write
	ongoing         int     // still blocked at the end
	blockedNoSample int     // kernel read, but no sample inside the block
	blockedNoKernel int     // kernel not read at all
	windowOpen      int     // blocked with the next hop's window open (connView.windowOpen)
	inSocketOnly    int     // absorbed only what the client's socket held (connView.inSocketOnly)
}

// aggregate collects the stalled connections' views.
func aggregate(views []connView) aggregated {
	n := len(views)
	a := aggregated{views: n, stopped: make([]time.Duration, 0, n), within: make([]time.Duration, 0, n),
		readAtStop: make([]int64, 0, n), absorbed: make([]int64, 0, n), accepted: make([]int64, 0, n)}
	for _, cv := range views {
		st := cv.stall
		a.stopped = append(a.stopped, cv.stop.at)
		a.within = append(a.within, cv.stop.within)
		a.readAtStop = append(a.readAtStop, cv.stop.read)
		if st.Resumed {
			a.resumed = append(a.resumed, st.Until)
		} else {
			a.notResumed++
		}
		if st.NoAckYet {
			a.noAck++
		}
		if st.PeerWindowZeroAt >= 0 {
			a.peerZero = append(a.peerZero, st.PeerWindowZeroAt)
		}
		a.absorbed = append(a.absorbed, cv.absorbed)
		a.accepted = append(a.accepted, cv.accepted)
		a.totalAbsorbed += cv.absorbed
		if !cv.kernel {
			a.kernelMissing++
		}
		a.blockedBefore += cv.blockedBefore
		if cv.aside != nil {
			a.asides = append(a.asides, *cv.aside)
		}
		if cv.block != nil {
			a.addBlocked(cv)
		}
	}
	return a
}

// addBlocked adds a connection whose writes blocked during its stall.
func (a *aggregated) addBlocked(cv connView) {
	a.blocked++
	a.blockedAt = append(a.blockedAt, cv.block.Began)
	a.delays = append(a.delays, cv.delay)
	a.payload = max(a.payload, cv.block.Size)
	if cv.windowOpen {
		a.windowOpen++
	}
	if cv.inSocketOnly {
		a.inSocketOnly++
	}
	if cv.block.Ongoing {
		a.ongoing++
	}
	switch {
	case cv.sendQueue >= 0:
		a.sendQueues = append(a.sendQueues, min(cv.sendQueue, cv.absorbed))
	case cv.kernel:
		a.blockedNoSample++
	default:
		a.blockedNoKernel++
	}
}

// figures sets the verdict's figures every stalled run has: the typical
// connection's stop, resumption, zero window and bytes, and the sums.
func (a aggregated) figures(v *Verdict) {
	v.BlockedConnections = a.blocked
	v.ServerStoppedAtSeconds = ptr(median(a.stopped).Seconds())
	if len(a.resumed) > 0 {
		v.ServerResumedAtSeconds = ptr(median(a.resumed).Seconds())
	}
	if len(a.peerZero) > 0 {
		v.PeerWindowClosedAtSeconds = ptr(median(a.peerZero).Seconds())
	}
	v.AbsorbedBytes = ptr(median(a.absorbed))
	v.AcceptedAfterStopBytes = ptr(median(a.accepted))
	v.TotalAbsorbedBytes = ptr(a.totalAbsorbed)
	v.ServerReadAtStopBytes = ptr(median(a.readAtStop))
	v.ServerStoppedWithinSeconds = ptr(median(a.within).Seconds())
}

// runWide sets the figures of the whole run, stalled or not: the write
// calls' waits, on a flowing path and in stalls, and the path the servers
// echoed (when every connection's server said, and they agree).
func runWide(v *Verdict, tls []Timeline) {
	var path []string
	known := len(tls) > 0
	for i, tl := range tls {
		v.WaitedStalledSeconds += tl.BlockedInStalls.Seconds()
		v.WaitedFlowingSeconds += max(tl.Blocked-tl.BlockedInStalls, 0).Seconds()
		switch {
		case !tl.PathKnown:
			known = false
		case i == 0:
			path = tl.Path
		case !slices.Equal(path, tl.Path):
			known = false
		}
	}
	if known {
		v.Via = ptr(append([]string{}, path...))
	}
}
