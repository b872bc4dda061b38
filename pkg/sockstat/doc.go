// Package sockstat reads the kernel's view of TCP flow control for one socket,
// and the host-wide zero-window counters.
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
// (SIOCOUTQ, SIOCOUTQNSD, SIOCINQ), without allocating, so it can run at every
// Prometheus scrape for every connection. Not every kernel fills every field:
// Sample.Has says which ones are real, so that a missing field is never shown as
// a false zero. ReadNetstat reads the host-wide TcpExt zero-window counters from
// /proc/net/netstat.
//
// The package imports no Prometheus code; pkg/metrics turns samples into metrics.
// It works on Linux only: elsewhere Supported reports false and reads return
// ErrUnsupported.
package sockstat
