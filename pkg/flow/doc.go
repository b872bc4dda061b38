// Package flow is the transport-neutral core of go-backpressure: the
// transports (TCP, WebSocket) and the session that runs one connection
// (the instrumented writer, the slow reader, their pacing, and the hello,
// ack and fin messages that let each side know how many bytes sit in
// between).
//
// One connection, seen from either end:
//
//	Writer -> Conn.WritePayload ==bytes==> [hops] ==> Conn.Read -> ReadPacer -> discard
//	   ^                                                               |
//	   +------ ack{bytes read so far} <------- Conn.WriteControl <-----+
//
// A TCP connection and a WebSocket connection are both a Conn: payload and
// control messages in each direction. Session runs one connection for either
// side (client or server, upload, download or both), so the writer and the
// slow reader are the same code in every binary. ParseTarget and Dial turn
// a tcp://, tls://, ws:// or wss:// URL into a connection, with a hello or
// raw.
//
// The multiplexed transports open many streams on one connection (a Mux,
// stream.go); each stream is a Conn and a StreamConn. gRPC (grpc.go: the
// client, grpc_server.go, grpc_stream.go: a stream as a Conn) runs
// grpc-go on a connection dialled or accepted here, whose every HTTP/2 frame
// passes an h2Tap (grpc_tap.go, grpc_tapconn.go) for the stream and
// connection windows grpc-go does not tell, and whose Sends' waits
// grpc_sends.go splits by layer. docs/HTTP2.md.
//
// Files: conn.go (Conn and its optional abilities), tcp.go, frame.go (TCP
// framing), websocket.go, wsclose.go (close codes and the close frame),
// target.go, session.go, observedwrite.go and acktracker.go (how writes and
// acks are reported), ackpolicy.go (when to ack), idlewatch.go and
// callbacks.go (the session's timers: a side that writes no payload runs in
// its caller's goroutine alone), readbuf.go, pacer.go, protocol.go,
// errors.go.
//
// Code that forwards one connection onto another (pkg/relay) uses only what
// is exported here: the optional abilities HalfCloser, Aborter and
// RawStream, FrameScanner, WriteObserver and AckTracker. Only a transport's
// own file names its concrete type, so a new transport is a file.
// Admission of connections before any byte is read (limits, origins) is
// pkg/admission.
//
// The package imports no Prometheus code: it reports every write, read, ack
// and pause through the Observer interface, which pkg/metrics implements.
package flow
