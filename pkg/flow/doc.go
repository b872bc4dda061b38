// Package flow is the transport-neutral core of go-backpressure: connections,
// the instrumented writer, the slow reader, their pacing, and the hello, ack
// and fin messages that let each side know how many bytes sit in between.
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
// slow reader are the same code in every binary.
//
// The package imports no Prometheus code: it reports every write, read, ack
// and pause through the Observer interface, which pkg/metrics implements.
package flow
