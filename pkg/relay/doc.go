// Package relay forwards a connection from a downstream peer to an
// upstream one through an explicit, bounded, measured buffer: bp-relay's
// core, the hop whose buffer size the user chooses.
//
// A relay joins a downstream connection (accepted) and an upstream one
// (dialled), one pipe per direction:
//
//	downstream.Read -> [up buffer]   -> upstream.WritePayload      (Up)
//	downstream.WritePayload   <- [down buffer] <- upstream.Read    (Down)
//	acks: read on one side, written unchanged on the other
//
// Each pipe has a reader goroutine that stops reading when its buffer is
// full, so the relay passes backpressure on instead of absorbing it without
// bound, and a writer goroutine that writes what the buffer holds. A Budget
// caps what all pipes of a process hold together.
//
// A pipe whose buffer holds a single read (stream mode) has no writer
// goroutine: its reader writes each read itself before it reads again, as
// socat does. The buffer semantics are the same (at most one read's worth
// held, no reading while the write blocks), without two goroutine hand-offs
// per read. Between two framed TCP connections a stream pipe forwards the
// raw bytes as they are (passthrough.go), and on Linux splices large data
// frames socket to socket through a kernel pipe that holds at most the
// same one read (splice.go).
//
// Files: relay.go (Relay, Config, Serve), session.go (one relayed
// connection: its sides, how it ends), forward.go (the read and write
// loops), pipe.go (a direction's buffer), passthrough.go, splice.go, budget.go,
// observer.go (Observer, Stats).
//
// The package uses only what pkg/flow exports: a Conn, and its optional
// abilities flow.HalfCloser (pass a raw end of stream on), flow.Aborter
// (make a peer see the other side's failure) and flow.RawStream (the
// passthrough); writes and acks are reported through flow.WriteObserver and
// flow.AckTracker, exactly as the session reports them. The wire format
// stays in pkg/flow too: the passthrough follows the frames it forwards with
// flow.FrameScanner, which decodes headers with the TCP transport's own
// decoder, rather than knowing the frame layout itself; so a new transport
// or a change of framing never touches the relay. The relay's own events
// (buffer fill, pauses, failures) go to an Observer, which pkg/metrics
// implements.
package relay
