// Package sockstat is the kernel's view of TCP flow control: one sampler of
// every connection's socket statistics, the one place that reads them, and
// the host-wide zero-window counters.
//
// Backpressure is decided by the kernel, not by the program: a slow reader's
// receive queue fills, its advertised window closes, and the writer's send queue
// fills until write blocks. The program only sees the blocked write. This package
// shows the queues and windows behind it:
//
//	writer process                                     reader process
//	write() --> [send queue] ==== network ====> [receive queue] --> read()
//	            SendQueue                        RecvQueue
//	            SendQueueNotSent                 OwnWindow (what it advertises)
//	            PeerWindow (what the reader advertised) <---- window updates
//
// A Reader samples one connection: one getsockopt(TCP_INFO) and three ioctls
// (SIOCOUTQ, SIOCOUTQNSD, SIOCINQ), without allocating. Not every kernel fills
// every field: Sample.Has says which ones are real, so that a missing field is
// never shown as a false zero.
//
// A Sampler is a flow.Observer that gives each open connection a Reader and
// reads them all in one pass per interval, from one goroutine (a pass waits
// ten times the last one's duration at least, so sampling takes at most a
// tenth of a core). It keeps, per protocol, the last pass's gauges and
// counters since start, the zero-window clock of each connection, and
// sends window open/close events. Everything else reads the sampler, never
// a socket:
//
//	flow.Session --Open/Closing/Closed--> Sampler --pass: Reader.Read each-->
//	    Stats  --> pkg/metrics (SocketCollector: the bp_socket_* metrics)
//	    Totals --> pkg/report  (the client's report and live display)
//	    Conn(nc).Latest --> pkg/verdict (send queue, peer window closed since)
//	    OnWindow --> bp-server's window log
//
// Streams of a multiplexed connection (HTTP/2, gRPC) share one socket: the
// Sampler reads and counts it once, however many streams hold it, and lets
// it go when the last of them closes. It also polls each open stream's
// flow.StreamConn at its passes and at close, for the windows and blocked
// times of the layer above TCP that the kernel cannot see (streams.go):
//
//	Open (info.Stream) --> StreamStats  --> pkg/metrics (StreamCollector: bp_stream_*)
//	                   --> StreamTotals --> pkg/report (the stream-layer section)
//
// ReadNetstat reads the host-wide TcpExt zero-window counters from
// /proc/net/netstat.
//
// The package imports no Prometheus code; pkg/metrics turns its figures into
// metrics. It works on Linux only: elsewhere Supported reports false, reads
// return ErrUnsupported and a Sampler samples nothing.
package sockstat
