package report

import (
	"fmt"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

// How a fleet report's peak_bytes_in_pipe was made (FleetSummary's
// PeakInPipeSource).
const (
	// PeakFromTimeline: the most the instances held together at one point
	// of their timelines (each at most its own peak), and at least the
	// largest instance's own peak (the fleet held that much at least when
	// it peaked).
	PeakFromTimeline = "fleet_timeline"
	// PeakSumOfInstances: the instances' peaks added up, when one of them
	// kept no timeline: an upper bound, since the peaks need not coincide.
	PeakSumOfInstances = "sum_of_instance_peaks"
)

// setPeakInPipe gives the fleet's peak in the pipe from the instances'
// timelines, which have every instance's in-pipe at the same moments: the
// instances' peaks, which addTotals summed, fall at moments of their own,
// and their sum only bounds the fleet's from above. Without a timeline the
// sum stays, said to be a bound.
func (fs *FleetSummary) setPeakInPipe() {
	t := &fs.Summary
	fs.PeakInPipeUpperBoundBytes = t.PeakBytesInPipe
	if t.Timeline == nil {
		fs.PeakInPipeSource = PeakSumOfInstances
		return
	}
	fs.PeakInPipeSource = PeakFromTimeline
	var peak int64
	var at *float64
	for _, p := range t.Timeline.Points {
		if v := fs.inPipeAt(p.Seconds); v > peak {
			peak, at = v, ptr(p.Seconds)
		}
	}
	for _, s := range fs.Instances {
		if s.PeakBytesInPipe > peak {
			peak, at = s.PeakBytesInPipe, nil // between two points of the timeline
		}
	}
	t.PeakBytesInPipe, fs.PeakInPipeAtSeconds = peak, at
}

// inPipeAt is the fleet's bytes in the pipe at t: each instance's at its
// point at t, at most its own peak. A point's figure is written minus
// acknowledged as it stood, which at full speed counts the acks' age too
// (each ack is milliseconds old when it is read); an instance's peak
// leaves that out (Recorder.InPipe), so its share is held to it.
func (fs *FleetSummary) inPipeAt(t float64) int64 {
	var sum int64
	for _, s := range fs.Instances {
		sum += min(pointAt(s.Timeline.Points, t).BytesInPipe, s.PeakBytesInPipe)
	}
	return sum
}

// peakInPipeLine says in the fleet report's text what its peak in the pipe
// is: the fleet's own, or the bound the instances' peaks give.
func (fs FleetSummary) peakInPipeLine() string {
	if !fs.Direction.ClientWrites() {
		return ""
	}
	bound := config.HumanBytes(float64(fs.PeakInPipeUpperBoundBytes))
	if fs.PeakInPipeSource != PeakFromTimeline {
		return fmt.Sprintf("  %-16s %s is the instances' peaks added up, an UPPER BOUND: they need not fall at one moment, and an instance kept no timeline to say when\n",
			"fleet peak", bound)
	}
	when := "at an instance's own peak, between two points of the timeline"
	if at := fs.PeakInPipeAtSeconds; at != nil {
		when = fmt.Sprintf("at %s into the run", seconds(*at))
	}
	return fmt.Sprintf("  %-16s %s %s: the most the instances held at one moment of their summed timeline (sampled every %s); their own peaks add up to %s, at moments of their own\n",
		"fleet peak", config.HumanBytes(float64(fs.PeakBytesInPipe)), when, seconds(fs.Timeline.IntervalSeconds), bound)
}
