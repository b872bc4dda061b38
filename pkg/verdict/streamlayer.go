package verdict

import (
	"fmt"
	"strings"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// The layer where it stopped. On HTTP/2 and gRPC a stream may send only
// what two windows allow, its own and its connection's, on top of TCP's;
// a reader that stops shuts the stream's window first. Whether the stop
// went deeper (the connection's window, every stream of it; TCP's, the
// socket) says how the peer buffers: a peer (a proxy or the server) that
// multiplexes holds a stop per stream, one that ties its streams to one
// buffer passes it down to the socket.

// Stop layers of a StreamLayer, the deepest a window closed at.
const (
	StopStream     = "stream"     // only stream windows closed
	StopConnection = "connection" // a connection's window closed, TCP's did not
	StopTCP        = "tcp"        // TCP's window closed too: the stop reached the socket
	StopNone       = "none"       // no window closed
	StopReader     = "reader"     // this side only read: its own windows, no stop to place
)

// SourceFrames is the StreamStats.Source of a transport that reads every
// frame itself: its figures are exact. It may go on with how, in
// parentheses: "frames (every HTTP/2 frame read above TLS)".
const SourceFrames = "frames"

// StreamFigures is what StreamLayerOf judges: the streams' account of the
// run and the kernel's of the sockets they share.
type StreamFigures struct {
	// Start is the run's start: times are from it.
	Start   time.Time
	Streams sockstat.StreamTotals
	// Connections is how many connections (sockets) the streams share.
	Connections  int
	ClientWrites bool
	// Kernel is the kernel's view of those sockets (each counted once),
	// nil when not read; KernelReason says why.
	Kernel       *sockstat.Totals
	KernelReason string
}

// StreamLayer is the stream layer's account of a run whose connections
// carry streams: where the writes waited, how low the windows went, and
// in words the layer where the stop was. Its JSON form is the report's
// `stream_layer` object. Times are summed over the streams; "at" times
// are seconds from the run's start.
type StreamLayer struct {
	Stop    string `json:"stop"`
	Summary string `json:"summary"`
	// Source says how the transport knows the figures: from this side's
	// own frames (exact), or how it estimated them.
	Source      string `json:"source"`
	Streams     int    `json:"streams"`
	Connections int    `json:"connections"`

	BlockedStreamWindowSeconds     float64 `json:"blocked_stream_window_seconds"`
	BlockedConnectionWindowSeconds float64 `json:"blocked_connection_window_seconds"`
	BlockedTCPSeconds              float64 `json:"blocked_tcp_seconds"`
	// StreamsWindowClosed: streams whose send window was shut at some time.
	// The "closed at" times name the first closing of each window that
	// held (shut flow.WindowHeldMin or longer: where the writes stopped),
	// or the first closing when none held.
	StreamsWindowClosed             int      `json:"streams_window_closed"`
	StreamWindowClosedAtSeconds     *float64 `json:"stream_window_closed_at_seconds,omitempty"`
	ConnectionWindowClosedAtSeconds *float64 `json:"connection_window_closed_at_seconds,omitempty"`
	// TCP's window, from the kernel (absent when not read): when the
	// peer's first closed, and for how long it was zero, summed over the
	// sockets (each counted once, however many streams it carries).
	TCPWindowClosedAtSeconds *float64 `json:"tcp_window_closed_at_seconds,omitempty"`
	TCPWindowZeroSeconds     *float64 `json:"tcp_window_zero_seconds,omitempty"`
	// StreamWindowHeld, ConnectionWindowHeld and TCPWindowHeld: a closing
	// of that window held the writes (shut flow.WindowHeldMin or longer
	// at once; TCP's as the kernel's samples saw it), the one the "closed
	// at" names. Absent (false): every closing was shorter, moments of
	// the peer's pace. A window that held outranks moments, however many,
	// in placing the stop (stopLayer).
	StreamWindowHeld     bool `json:"stream_window_held,omitempty"`
	ConnectionWindowHeld bool `json:"connection_window_held,omitempty"`
	TCPWindowHeld        bool `json:"tcp_window_held,omitempty"`

	SendStreamWindowLowestBytes     *int64 `json:"send_stream_window_lowest_bytes,omitempty"`
	SendConnectionWindowLowestBytes *int64 `json:"send_connection_window_lowest_bytes,omitempty"`
	RecvStreamWindowLowestBytes     *int64 `json:"recv_stream_window_lowest_bytes,omitempty"`
	RecvConnectionWindowLowestBytes *int64 `json:"recv_connection_window_lowest_bytes,omitempty"`
	WindowUpdatesReceived           uint64 `json:"window_updates_received"`
	WindowUpdatesSent               uint64 `json:"window_updates_sent"`

	// StreamGroups and StreamsTied: with --slow-streams K of N, the slow
	// and the fast streams side by side, and whether the path tied them
	// together (streamgroups.go); absent otherwise.
	StreamGroups *StreamGroups `json:"stream_groups,omitempty"`
	StreamsTied  *StreamsTied  `json:"streams_tied,omitempty"`
}

// StreamLayerOf judges the stream layer of a run; nil when it had no
// streams. It is a pure function of its figures.
func StreamLayerOf(f StreamFigures) *StreamLayer {
	st := f.Streams
	if st.Streams == 0 {
		return nil
	}
	l := &StreamLayer{
		Source: sourceWords(st.Sources), Streams: st.Streams, Connections: f.Connections,
		BlockedStreamWindowSeconds: st.BlockedStream.Seconds(), BlockedConnectionWindowSeconds: st.BlockedConn.Seconds(),
		BlockedTCPSeconds: st.BlockedTCP.Seconds(), StreamsWindowClosed: st.ClosedStreams,
		SendStreamWindowLowestBytes: known(st.SendStreamWindowLowest), SendConnectionWindowLowestBytes: known(st.SendConnWindowLowest),
		RecvStreamWindowLowestBytes: known(st.RecvStreamWindowLowest), RecvConnectionWindowLowestBytes: known(st.RecvConnWindowLowest),
		WindowUpdatesReceived: st.WindowUpdatesReceived, WindowUpdatesSent: st.WindowUpdatesSent,
	}
	at := func(t time.Time) *float64 {
		if t.IsZero() {
			return nil
		}
		return ptr(max(t.Sub(f.Start), 0).Seconds())
	}
	l.StreamWindowClosedAtSeconds = at(heldOr(st.StreamHeldAt, st.StreamClosedAt))
	l.ConnectionWindowClosedAtSeconds = at(heldOr(st.ConnHeldAt, st.ConnClosedAt))
	l.StreamWindowHeld, l.ConnectionWindowHeld = !st.StreamHeldAt.IsZero(), !st.ConnHeldAt.IsZero()
	tcpKnown := f.Kernel != nil && f.Kernel.Has&sockstat.FieldPeerWindow != 0
	if tcpKnown && f.ClientWrites {
		l.TCPWindowZeroSeconds = ptr(f.Kernel.PeerWindowZero.Seconds())
		l.TCPWindowClosedAtSeconds = at(heldOr(f.Kernel.HeldPeerWindowClose, f.Kernel.FirstPeerWindowClose))
		l.TCPWindowHeld = !f.Kernel.HeldPeerWindowClose.IsZero()
	}
	if !f.ClientWrites {
		l.Stop, l.Summary = StopReader, readerWords(l)
		return l
	}
	l.Stop = stopLayer(l, tcpKnown, f.Kernel)
	l.Summary = stopWords(l, tcpKnown, f.KernelReason)
	return l
}

// heldOr is the closing a report names, "the window closed at": the
// first that held (flow.WindowHeldMin or longer), where the writes
// stopped, not an instant's shutting at the start (gRPC's first 64 KiB
// filled before the peer's first WINDOW_UPDATE); the first closing when
// none held.
func heldOr(held, first time.Time) time.Time {
	if held.IsZero() {
		return first
	}
	return held
}

// heldMin is the least time a layer must have held the writes to count
// as where they stopped: a window shut for an instant (the connection's
// first 64 KiB before the peer's first WINDOW_UPDATE widens it) is not a
// stop. A layer counts when the writes waited on it at least this long in
// all and at least heldShare of all their waits. It is flow.WindowHeldMin,
// the bar of the closing a report names (heldOr).
const (
	heldMin   = float64(flow.WindowHeldMin) / float64(time.Second) // seconds
	heldShare = 0.1
)

// stopLayer is the deepest layer that held the writes for long: TCP's
// window (the kernel saw it shut), the connection's, the stream's. A
// layer one of whose closings held (shut heldMin at once) comes first:
// a peer slow for moments, a busy machine's gRPC server reading its
// socket late while the windows grow at the start, shuts the
// connection's window again and again for a few ms each (17 to 27
// closings of up to 76 ms in runs reproduced here); in a CI run such
// closings added up to 0.46 s, an eighth of the waits, beside a stream
// window that held 2.5 s, the real stop. When no closing held,
// the deepest layer whose waits add up is where the writes were held:
// a reader paced slower than the writer shuts a window for moments only,
// over and over.
func stopLayer(l *StreamLayer, tcpKnown bool, k *sockstat.Totals) string {
	waited := l.BlockedStreamWindowSeconds + l.BlockedConnectionWindowSeconds + l.BlockedTCPSeconds
	var tcpZero float64
	if tcpKnown {
		tcpZero = k.PeerWindowZero.Seconds()
	}
	layers := []struct {
		stop string
		held bool
		secs float64
	}{
		{StopTCP, l.TCPWindowHeld, tcpZero},
		{StopConnection, l.ConnectionWindowHeld, l.BlockedConnectionWindowSeconds},
		{StopStream, l.StreamWindowHeld, l.BlockedStreamWindowSeconds},
	}
	for _, needHeld := range []bool{true, false} {
		for _, y := range layers {
			if (y.held || !needHeld) && y.secs >= heldMin && y.secs >= heldShare*waited {
				return y.stop
			}
		}
	}
	return StopNone
}

// stopWords says in words which windows closed, when, and so where the
// stop was.
func stopWords(l *StreamLayer, tcpKnown bool, kernelReason string) string {
	var closed []string
	if l.StreamWindowClosedAtSeconds != nil || l.StreamsWindowClosed > 0 {
		closed = append(closed, "the stream window closed"+atWords(l.StreamWindowClosedAtSeconds)+ofStreams(l))
	}
	if l.ConnectionWindowClosedAtSeconds != nil || l.BlockedConnectionWindowSeconds > 0 {
		w := "the connection window" + atWords(l.ConnectionWindowClosedAtSeconds)
		switch {
		case l.Stop == StopConnection || l.Stop == StopTCP:
		case !l.ConnectionWindowHeld:
			w += " for moments only (writes waited " + shortSeconds(l.BlockedConnectionWindowSeconds) + " on it in all)"
		default:
			w += " (writes waited only " + shortSeconds(l.BlockedConnectionWindowSeconds) + " on it)"
		}
		closed = append(closed, w)
	}
	s := strings.Join(closed, ", ")
	tcp := "TCP's window is not known (" + orDefault(kernelReason, "kernel socket statistics not read") + ")"
	switch {
	case !tcpKnown:
	case l.Stop == StopTCP:
		tcp = "TCP's window closed too" + atWords(l.TCPWindowClosedAtSeconds)
	case l.TCPWindowClosedAtSeconds != nil:
		tcp = fmt.Sprintf("TCP's only for moments (%s in all)", seconds(*l.TCPWindowZeroSeconds))
	default:
		tcp = "TCP's never did"
	}
	switch l.Stop {
	case StopTCP:
		if s == "" {
			return "no stream or connection window closed; TCP's did" + atWords(l.TCPWindowClosedAtSeconds) +
				": the stop reached the socket with the HTTP/2 windows open (the peer's windows are larger than what it buffers)" + pacedWords(l)
		}
		return s + "; " + tcp + ": the stop reached the socket" + pacedWords(l)
	case StopConnection:
		return s + "; " + tcp + ": the stop was at the connection's window, which every stream of the connection waits on" + tcpDoubt(tcpKnown) + pacedWords(l)
	case StopStream:
		return s + "; " + tcp + ": the stop was at the stream layer (the peer multiplexes: it holds a stop per stream, and the other streams of the connection can go on)" + tcpDoubt(tcpKnown) + pacedWords(l)
	}
	words := "no window held the writes for long, neither a stream's nor a connection's"
	if tcpKnown {
		words += " nor TCP's"
	}
	if s != "" {
		words = s + "; " + tcp + ": " + words
	}
	if l.BlockedTCPSeconds > 0 {
		words += fmt.Sprintf("; writes waited %s on the socket with every window open: the path's throughput, not a stop", seconds(l.BlockedTCPSeconds))
	}
	return words
}

// pacedWords says so when the stop layer's window never held the writes
// at once: they waited on it for moments, over and over (stopLayer).
func pacedWords(l *StreamLayer) string {
	held := map[string]bool{StopTCP: l.TCPWindowHeld, StopConnection: l.ConnectionWindowHeld, StopStream: l.StreamWindowHeld}
	if held[l.Stop] {
		return ""
	}
	return "; its window shut for moments, over and over, none 100 ms at once: the peer reads slower than this side writes"
}

// tcpDoubt is the caveat of a stop placed above TCP without the kernel's
// word that TCP's window stayed open.
func tcpDoubt(tcpKnown bool) string {
	if tcpKnown {
		return ""
	}
	return ", or deeper"
}

// readerWords describes the windows of a run on which this side only
// read: what it told its peer.
func readerWords(l *StreamLayer) string {
	s := "this side only read: the windows it advertised went as low as " +
		bytesOrUnknown(l.RecvStreamWindowLowestBytes) + " (stream) and " + bytesOrUnknown(l.RecvConnectionWindowLowestBytes) + " (connection)"
	if l.RecvStreamWindowLowestBytes != nil && *l.RecvStreamWindowLowestBytes == 0 {
		s += ": its reading stopped a stream, which the writer saw as a shut window"
	}
	return s
}

// atWords is " at 2.1 s", or "" when the time is not known.
func atWords(at *float64) string {
	if at == nil {
		return ""
	}
	return " at " + seconds(*at)
}

// ofStreams is " (1 of 2 streams)" when not every stream's window shut.
func ofStreams(l *StreamLayer) string {
	if l.StreamsWindowClosed > 0 && l.StreamsWindowClosed < l.Streams {
		return fmt.Sprintf(" (%d of %d streams)", l.StreamsWindowClosed, l.Streams)
	}
	return ""
}

// sourceWords says how sure the figures are, from the transports'
// StreamStats.Source.
func sourceWords(sources []string) string {
	var out []string
	for _, s := range sources {
		detail, frames := strings.CutPrefix(s, SourceFrames)
		detail = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(detail), "("), ")")
		switch {
		case frames && detail == "":
			out = append(out, "from this side's own frames (exact)")
		case frames && !strings.HasPrefix(s, SourceFrames+" "):
			out = append(out, "estimated: "+s) // a word that only starts like it
		case frames:
			out = append(out, "from this side's own frames (exact; "+detail+")")
		default:
			out = append(out, "estimated: "+s)
		}
	}
	if len(out) == 0 {
		return "the transport did not say how it knows them"
	}
	return strings.Join(out, "; ")
}

// known is v, or nil for -1 (unknown).
func known(v int64) *int64 {
	if v < 0 {
		return nil
	}
	return &v
}

func bytesOrUnknown(v *int64) string {
	if v == nil {
		return "unknown"
	}
	return fmt.Sprintf("%d bytes", *v)
}

// shortSeconds is seconds, down to microseconds: "52 µs", "3 ms", "1.5 s".
func shortSeconds(s float64) string {
	if s < 0.001 {
		return fmt.Sprintf("%.0f µs", s*1e6)
	}
	return seconds(s)
}
