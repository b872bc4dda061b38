package verdict

import (
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// TestStreamLayerOf pins the stream layer's words and figures for the
// runs the lab sees: one stream of two paused behind a peer that
// multiplexes (the stream window shut, TCP's open), a peer that ties the
// streams to the connection's window, a stop that reached the socket,
// and a run where nothing closed.
func TestStreamLayerOf(t *testing.T) {
	start := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	streams := sockstat.StreamTotals{
		StreamCounters: sockstat.StreamCounters{BlockedStream: 7900 * time.Millisecond, BlockedTCP: 30 * time.Millisecond,
			WindowUpdatesReceived: 120, WindowUpdatesSent: 4},
		Streams: 2, ClosedStreams: 1, SendStreamWindowLowest: 0, SendConnWindowLowest: 524_288,
		RecvStreamWindowLowest: 65_535, RecvConnWindowLowest: 1 << 20, StreamClosedAt: at(2.1), StreamHeldAt: at(2.1), Sources: []string{"frames"},
	}
	tcpOpen := &sockstat.Totals{Has: sockstat.AllFields}
	tcpClosed := &sockstat.Totals{Has: sockstat.AllFields, FirstPeerWindowClose: at(2.5), HeldPeerWindowClose: at(2.5),
		Counters: sockstat.Counters{PeerWindowZero: 5 * time.Second, PeerWindowCloses: 1}}
	connShut := streams
	connShut.BlockedConn, connShut.ConnClosedAt, connShut.ConnHeldAt, connShut.SendConnWindowLowest = 3*time.Second, at(2.3), at(2.3), 0
	instants := streams
	instants.BlockedConn, instants.ConnClosedAt = 52*time.Microsecond, at(0.005)
	// The same stop after a startup instant of each window: gRPC's first
	// 64 KiB filled at 11 ms, before the peer's first WINDOW_UPDATE.
	startup := connShut
	startup.StreamClosedAt, startup.StreamHeldAt = at(0.011), at(2.1)
	startup.ConnClosedAt, startup.ConnHeldAt = at(0.005), at(2.3)
	tcpStartup := &sockstat.Totals{Has: sockstat.AllFields, FirstPeerWindowClose: at(0.2), HeldPeerWindowClose: at(2.5),
		Counters: sockstat.Counters{PeerWindowZero: 5 * time.Second, PeerWindowCloses: 2}}
	tcpMoment := &sockstat.Totals{Has: sockstat.AllFields, FirstPeerWindowClose: at(3),
		Counters: sockstat.Counters{PeerWindowZero: 100 * time.Millisecond, PeerWindowCloses: 1}}
	// A CI run of the e2e test on a busy machine: the race-built
	// server read its socket late while the windows grew at the start,
	// and the connection's window shut again and again (17 to 27 times,
	// up to 76 ms each, in runs reproduced here), 0.46 s of waits in
	// all, an eighth of them; none held. The stream window held 2.5 s
	// from 0.57 s: the stop.
	moments := streams
	moments.BlockedStream, moments.BlockedConn, moments.BlockedTCP = 2472*time.Millisecond, 459*time.Millisecond, 683*time.Millisecond
	moments.StreamClosedAt, moments.StreamHeldAt, moments.ConnClosedAt = at(0.011), at(0.57), at(0.015)
	// A stream paced by a reader slower than its writer: the window
	// shut again and again, none of its closings 100 ms at once; the
	// writes waited 5.2 s on it in all.
	paced := streams
	paced.BlockedStream, paced.StreamHeldAt = 5200*time.Millisecond, time.Time{}
	nothing := sockstat.StreamTotals{StreamCounters: sockstat.StreamCounters{BlockedTCP: 1500 * time.Millisecond},
		Streams: 8, SendStreamWindowLowest: 12_000, SendConnWindowLowest: 40_000, RecvStreamWindowLowest: -1, RecvConnWindowLowest: -1,
		Sources: []string{"channelz: windows polled every 100 ms, blocked time from Send() calls"}}

	tests := []struct {
		name       string
		f          StreamFigures
		stop       string
		summary    string
		source     string
		tcpClosedS *float64
	}{
		{
			// One slow stream of two, direct to a server that holds the
			// stop per stream: TCP never closed.
			name: "stream layer", f: StreamFigures{Start: start, Streams: streams, Connections: 1, ClientWrites: true, Kernel: tcpOpen},
			stop:    StopStream,
			summary: "the stream window closed at 2.1 s (1 of 2 streams); TCP's never did: the stop was at the stream layer (the peer multiplexes: it holds a stop per stream, and the other streams of the connection can go on)",
			source:  "from this side's own frames (exact)",
		},
		{
			// The same with the kernel not read: the stop may go deeper.
			name: "no kernel", f: StreamFigures{Start: start, Streams: streams, Connections: 1, ClientWrites: true, KernelReason: "socket sampling is off (--sample-interval 0)"},
			stop:    StopStream,
			summary: "the stream window closed at 2.1 s (1 of 2 streams); TCP's window is not known (socket sampling is off (--sample-interval 0)): the stop was at the stream layer (the peer multiplexes: it holds a stop per stream, and the other streams of the connection can go on), or deeper",
			source:  "from this side's own frames (exact)",
		},
		{
			// The connection's window shut too: every stream waits.
			name: "connection window", f: StreamFigures{Start: start, Streams: connShut, Connections: 1, ClientWrites: true, Kernel: tcpOpen},
			stop:    StopConnection,
			summary: "the stream window closed at 2.1 s (1 of 2 streams), the connection window at 2.3 s; TCP's never did: the stop was at the connection's window, which every stream of the connection waits on",
			source:  "from this side's own frames (exact)",
		},
		{
			// The gRPC run the e2e test sees: the connection's first
			// 64 KiB shut for 52 µs before the server widened it, the
			// kernel's window seen shut at one sample; the stop is the
			// stream's.
			name: "instants", f: StreamFigures{Start: start, Streams: instants, Connections: 1, ClientWrites: true, Kernel: tcpMoment},
			stop:       StopStream,
			summary:    "the stream window closed at 2.1 s (1 of 2 streams), the connection window at 5 ms for moments only (writes waited 52 µs on it in all); TCP's only for moments (0.10 s in all): the stop was at the stream layer (the peer multiplexes: it holds a stop per stream, and the other streams of the connection can go on)",
			source:     "from this side's own frames (exact)",
			tcpClosedS: ptr(3.0),
		},
		{
			name: "connection window for moments", f: StreamFigures{Start: start, Streams: moments, Connections: 1, ClientWrites: true, Kernel: tcpOpen},
			stop:    StopStream,
			summary: "the stream window closed at 0.57 s (1 of 2 streams), the connection window at 15 ms for moments only (writes waited 0.46 s on it in all); TCP's never did: the stop was at the stream layer (the peer multiplexes: it holds a stop per stream, and the other streams of the connection can go on)",
			source:  "from this side's own frames (exact)",
		},
		{
			name: "paced, no closing held", f: StreamFigures{Start: start, Streams: paced, Connections: 1, ClientWrites: true, Kernel: tcpOpen},
			stop:    StopStream,
			summary: "the stream window closed at 2.1 s (1 of 2 streams); TCP's never did: the stop was at the stream layer (the peer multiplexes: it holds a stop per stream, and the other streams of the connection can go on); its window shut for moments, over and over, none 100 ms at once: the peer reads slower than this side writes",
			source:  "from this side's own frames (exact)",
		},
		{
			// TCP's window closed as well: the stop reached the socket.
			name: "socket", f: StreamFigures{Start: start, Streams: connShut, Connections: 1, ClientWrites: true, Kernel: tcpClosed},
			stop:       StopTCP,
			summary:    "the stream window closed at 2.1 s (1 of 2 streams), the connection window at 2.3 s; TCP's window closed too at 2.5 s: the stop reached the socket",
			source:     "from this side's own frames (exact)",
			tcpClosedS: ptr(2.5),
		},
		{
			// Each window shut for an instant at the start, then held:
			// the closings named are those that held, not the first.
			name: "held after an instant", f: StreamFigures{Start: start, Streams: startup, Connections: 1, ClientWrites: true, Kernel: tcpStartup},
			stop:       StopTCP,
			summary:    "the stream window closed at 2.1 s (1 of 2 streams), the connection window at 2.3 s; TCP's window closed too at 2.5 s: the stop reached the socket",
			source:     "from this side's own frames (exact)",
			tcpClosedS: ptr(2.5),
		},
		{
			// Eight streams on two connections at full speed: nothing
			// closed, writes waited on the socket's throughput; the
			// figures are estimated, and said so.
			name: "nothing closed", f: StreamFigures{Start: start, Streams: nothing, Connections: 2, ClientWrites: true, Kernel: tcpOpen},
			stop:    StopNone,
			summary: "no window held the writes for long, neither a stream's nor a connection's nor TCP's; writes waited 1.5 s on the socket with every window open: the path's throughput, not a stop",
			source:  "estimated: channelz: windows polled every 100 ms, blocked time from Send() calls",
		},
		{
			// A download: this side's own windows.
			name: "reader", f: StreamFigures{Start: start, Streams: streams, Connections: 1, Kernel: tcpOpen},
			stop:    StopReader,
			summary: "this side only read: the windows it advertised went as low as 65535 bytes (stream) and 1048576 bytes (connection)",
			source:  "from this side's own frames (exact)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := StreamLayerOf(tt.f)
			if l.Stop != tt.stop || l.Summary != tt.summary || l.Source != tt.source {
				t.Errorf("stop %q, source %q, summary\n got %q\nwant stop %q, source %q, summary\n     %q", l.Stop, l.Source, l.Summary, tt.stop, tt.source, tt.summary)
			}
			if got, want := l.BlockedStreamWindowSeconds, tt.f.Streams.BlockedStream.Seconds(); got != want {
				t.Errorf("blocked on the stream window %v s, want %v", got, want)
			}
			if (l.TCPWindowClosedAtSeconds == nil) != (tt.tcpClosedS == nil) || (l.TCPWindowClosedAtSeconds != nil && *l.TCPWindowClosedAtSeconds != *tt.tcpClosedS) {
				t.Errorf("TCP window closed at %v, want %v", l.TCPWindowClosedAtSeconds, tt.tcpClosedS)
			}
		})
	}
	for src, want := range map[string]string{
		"frames": "from this side's own frames (exact)",
		"frames (every HTTP/2 frame of the connection read on this side, above TLS)": "from this side's own frames (exact; every HTTP/2 frame of the connection read on this side, above TLS)",
		"net/http: no frame view": "estimated: net/http: no frame view",
		"framesless":              "estimated: framesless",
	} {
		if got := sourceWords([]string{src}); got != want {
			t.Errorf("source %q: %q, want %q", src, got, want)
		}
	}
	if l := StreamLayerOf(StreamFigures{Start: start, ClientWrites: true}); l != nil {
		t.Errorf("a run without streams has a stream layer: %+v", l)
	}
}
