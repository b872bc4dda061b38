package report

import (
	"fmt"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// StreamSource is where a Recorder reads the stream layer of the run's
// streams (HTTP/2, gRPC): the socket sampler, which polls each stream's
// windows and blocked times. The report itself polls nothing.
type StreamSource interface {
	StreamTotals() sockstat.StreamTotals
	// ResetPeak starts the source's new run: lowest windows, first
	// closures and streams counted from now.
	ResetPeak()
}

// SetStreams tells the recorder where to read the stream layer of the run
// (nil: nowhere, and the report has no stream-layer section). Call it
// before the run: like the kernel's, the source's counters count from its
// start, so the recorder reads them once here.
func (r *Recorder) SetStreams(src StreamSource) {
	r.streams = src
	if src == nil {
		return
	}
	src.ResetPeak()
	r.streamBase = src.StreamTotals()
	r.streamsSince = time.Now()
}

// streamLayerNow judges the run's stream layer (pkg/verdict), nil when it
// had no streams or nothing reads them.
func (r *Recorder) streamLayerNow(run Run, kernel *sockstat.Totals) *verdict.StreamLayer {
	if r.streams == nil {
		return nil
	}
	start := run.Start
	if start.IsZero() {
		start = r.streamsSince
	}
	return verdict.StreamLayerOf(verdict.StreamFigures{
		Start: start, Streams: r.streams.StreamTotals().Since(r.streamBase), Connections: run.Connections,
		ClientWrites: run.Direction.ClientWrites(), Kernel: kernel, KernelReason: "kernel socket statistics not read",
	})
}

// units names what the run's figures sum over: connections, or streams
// on connections (--streams).
func (s Summary) units() verdict.Units {
	if s.Streams > 0 {
		return verdict.Units{Runs: s.Streams, Connections: max(s.Connections, 1)}
	}
	return verdict.Units{Runs: max(s.Connections, 1)}
}

// writeStreamText prints the stream-layer rows of the text report: how
// many streams, how sure the figures are, where the writes waited, how
// low the windows went, the WINDOW_UPDATEs, and the layer of the stop in
// words.
func (s Summary) writeStreamText(row func(k, format string, a ...any)) {
	l := s.StreamLayer
	if l == nil {
		return
	}
	u := verdict.Units{Runs: l.Streams, Connections: max(l.Connections, 1)}
	row("stream layer", "%d stream(s) on %d connection(s); figures %s", l.Streams, u.Connections, l.Source)
	if s.Direction.ClientWrites() {
		in := ""
		if l.Streams > 1 {
			in = " (in all, summed " + u.Over() + ")"
		}
		row("blocked on", "stream window %s, connection window %s, TCP %s%s",
			seconds(l.BlockedStreamWindowSeconds), seconds(l.BlockedConnectionWindowSeconds), seconds(l.BlockedTCPSeconds), in)
		row("send windows", "lowest: stream %s, connection %s", windowBytes(l.SendStreamWindowLowestBytes), windowBytes(l.SendConnectionWindowLowestBytes))
	}
	row("recv windows", "lowest: stream %s, connection %s", windowBytes(l.RecvStreamWindowLowestBytes), windowBytes(l.RecvConnectionWindowLowestBytes))
	row("window updates", "%d received, %d sent", l.WindowUpdatesReceived, l.WindowUpdatesSent)
	writeStreamGroupsText(l, row)
	for i, line := range wrap(l.Summary+".", verdictWidth) {
		k := ""
		if i == 0 {
			k = "stopped at"
		}
		row(k, "%s", line)
	}
}

// windowBytes prints a window: "0 B", "65.5 kB (65535 bytes)", or
// "unknown".
func windowBytes(v *int64) string {
	switch {
	case v == nil:
		return "unknown"
	case *v == 0:
		return "0 (shut)"
	}
	return fmt.Sprintf("%s (%d bytes)", config.HumanBytes(float64(*v)), *v)
}

// streamsWords is ", 8 streams" for the report's header when the
// connections carried streams.
func (s Summary) streamsWords() string {
	if s.Streams == 0 {
		return ""
	}
	return fmt.Sprintf(", %d stream(s)", s.Streams)
}
