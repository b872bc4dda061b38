package report

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// mergeStreamLayer is the fleet's stream layer from the instances' own
// (nil when none had streams): streams, connections, blocked times,
// window-closed streams, WINDOW_UPDATEs and TCP's zero-window time summed;
// the lowest windows the least of the instances'; the closings the
// earliest (each from its own instance's start: a fleet starts together)
// of those that held, as an instance's report names (verdict.StreamLayer):
// an instance's closing is one that held when its report says so
// (stream_window_held and the like), the first of moments otherwise.
// The stop layer and its words are verdict.StreamLayerOf's of those
// figures, as one instance's report judges its own; the source is the
// instances' sources, each part once.
func mergeStreamLayer(instances []Summary, clientWrites bool) *verdict.StreamLayer {
	st := sockstat.StreamTotals{SendStreamWindowLowest: -1, SendConnWindowLowest: -1, RecvStreamWindowLowest: -1, RecvConnWindowLowest: -1}
	start := time.Unix(0, 0) // the instances' "at" seconds are put on one clock from here
	var conns int
	var kernel *sockstat.Totals
	var sources []string
	at := func(prev time.Time, secs *float64) time.Time {
		if secs == nil {
			return prev
		}
		t := start.Add(durationOf(*secs))
		if prev.IsZero() || t.Before(prev) {
			return t
		}
		return prev
	}
	for _, s := range instances {
		l := s.StreamLayer
		if l == nil {
			continue
		}
		st.Streams += l.Streams
		st.ClosedStreams += l.StreamsWindowClosed
		conns += l.Connections
		st.BlockedStream += durationOf(l.BlockedStreamWindowSeconds)
		st.BlockedConn += durationOf(l.BlockedConnectionWindowSeconds)
		st.BlockedTCP += durationOf(l.BlockedTCPSeconds)
		st.WindowUpdatesReceived += l.WindowUpdatesReceived
		st.WindowUpdatesSent += l.WindowUpdatesSent
		lowest(&st.SendStreamWindowLowest, l.SendStreamWindowLowestBytes)
		lowest(&st.SendConnWindowLowest, l.SendConnectionWindowLowestBytes)
		lowest(&st.RecvStreamWindowLowest, l.RecvStreamWindowLowestBytes)
		lowest(&st.RecvConnWindowLowest, l.RecvConnectionWindowLowestBytes)
		closing := func(held, first *time.Time, secs *float64, wasHeld bool) {
			if wasHeld {
				*held = at(*held, secs)
			} else {
				*first = at(*first, secs)
			}
		}
		closing(&st.StreamHeldAt, &st.StreamClosedAt, l.StreamWindowClosedAtSeconds, l.StreamWindowHeld)
		closing(&st.ConnHeldAt, &st.ConnClosedAt, l.ConnectionWindowClosedAtSeconds, l.ConnectionWindowHeld)
		if l.TCPWindowZeroSeconds != nil {
			if kernel == nil {
				kernel = &sockstat.Totals{Has: sockstat.FieldPeerWindow}
			}
			kernel.PeerWindowZero += durationOf(*l.TCPWindowZeroSeconds)
			closing(&kernel.HeldPeerWindowClose, &kernel.FirstPeerWindowClose, l.TCPWindowClosedAtSeconds, l.TCPWindowHeld)
		}
		for _, w := range strings.Split(l.Source, "; ") {
			if !slices.Contains(sources, w) {
				sources = append(sources, w)
			}
		}
	}
	out := verdict.StreamLayerOf(verdict.StreamFigures{Start: start, Streams: st, Connections: conns,
		ClientWrites: clientWrites, Kernel: kernel, KernelReason: "kernel socket statistics not read"})
	if out != nil {
		out.Source = strings.Join(sources, "; ")
	}
	return out
}

// lowest lowers *v (-1: unknown) to w when w is known and lower.
func lowest(v *int64, w *int64) {
	if w != nil && (*v < 0 || *w < *v) {
		*v = *w
	}
}

// durationOf is seconds as a time.Duration, to the nanosecond.
func durationOf(secs float64) time.Duration {
	return time.Duration(math.Round(secs * float64(time.Second)))
}
