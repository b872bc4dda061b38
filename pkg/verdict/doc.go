// Package verdict judges, from the client's side alone, where backpressure
// stopped: the question the lab exists for. When the server stopped
// reading, did this client notice, how soon, and how many bytes did the
// path absorb on the way?
//
//	flow.Session --Wrote/Acked--> Observer: per-connection timeline
//	                                 (written: one atomic add per write;
//	                                  acks, blocked writes: rare, under a lock)
//	                   Run: a pass every interval: ack stall? writes stuck?
//	                        only then the sampler's latest sample:
//	sockstat.Sampler --Conn(nc).Latest--> send queue, peer window closed since
//	                                 |
//	                   Timelines --> Compute --> Verdict --> report (text, JSON)
//	                   Live -------------------> the live display's words
//
//	Compute: pick (pick.go: each connection's stall, block, stop position)
//	     --> aggregate (aggregate.go: medians, counts, sums)
//	     --> classify (classify.go: blocked or absorbed, and its figures)
//	     --> describe (describe.go: the summary, the reasons, the confidence)
//
// What the client can measure, and what it means:
//
//   - Acks carry the bytes the server has read. When they stop moving while
//     bytes are unacknowledged, the server stopped reading: the last ack
//     that moved marks the moment, seen one path latency late and to within
//     one ack interval.
//   - A write call blocked for at least the stall threshold means every
//     buffer between the client and the server was full: backpressure
//     reached the client. The bytes written but not acknowledged at that
//     moment are what the path absorbed.
//   - The kernel's send queue (SIOCOUTQ) during that blocked write is the
//     part of it in the client's own socket; the rest sat further along.
//
// Compute is a pure function of Timelines, so the reasoning is tested on
// constructed timelines; Observer only records. Where the server stopped,
// in time and in bytes, is computed in one place (stopOf in pick.go), so a
// better estimate of it changes one function.
package verdict
