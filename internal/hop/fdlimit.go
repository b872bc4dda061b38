package hop

import (
	"github.com/go-backpressure/go-backpressure/pkg/config"
)

// fdMargin is the file descriptors a listening binary holds besides its
// connections: listeners, the runtime's epoll and pipes, stdio, the
// socket sampler's netlink socket, /proc files read for metrics, and
// dials (a relay's upstream) under way.
const fdMargin = 64

// fdNeed is how many file descriptors the binary holds at its connection
// limits: each listener's --max-connections (WebSocket on the HTTP
// listener, and rawListeners more: raw TCP, gRPC) times fds per connection, plus --max-http-connections
// per HTTP listener, plus fdMargin. unbounded: a limit is 0 (none), so no
// number fits.
func fdNeed(l config.Limits, rawListeners, perConn, httpListeners int) (need int, unbounded bool) {
	listeners := 1 + rawListeners // WebSocket, on the HTTP listener, and the others
	perConn = max(perConn, 1)
	return listeners*perConn*l.MaxConnections + httpListeners*l.MaxHTTPConnections + fdMargin,
		l.MaxConnections == 0 || l.MaxHTTPConnections == 0
}

// checkFDs raises the soft RLIMIT_NOFILE to the hard one (what servers
// commonly do; Go's runtime does too, since 1.19, but a binary should not
// depend on it silently) and logs both with what the limits need; when the
// limits do not fit, once, a warning with the numbers: beyond the limit
// accept() fails (retried, counted in bp_accept_errors_total{reason=
// "fd_limit"}) before --max-connections refuses anyone.
func checkFDs(o Options) {
	soft, hard, err := raiseNOFILE()
	if err != nil {
		o.Log.Warn("file descriptor limit unknown", "err", err)
		return
	}
	raw := 0
	for _, addr := range []string{o.TCPAddr, o.GRPCAddr} {
		if addr != "" {
			raw++
		}
	}
	need, unbounded := fdNeed(o.Limits, raw, o.FDsPerConnection, 1+o.ExtraHTTPListeners)
	fields := []any{"nofile_soft", soft, "nofile_hard", hard, "max_connections", o.Limits.MaxConnections,
		"max_http_connections", o.Limits.MaxHTTPConnections, "fds_per_connection", max(o.FDsPerConnection, 1)}
	switch {
	case unbounded:
		o.Log.Warn("connection limits off: file descriptors are bound only by the process's limit, beyond which accept fails and is retried", fields...)
	case uint64(need) > soft:
		o.Log.Warn("connection limits exceed the file descriptor limit: accept fails and is retried before --max-connections refuses anyone; lower --max-connections or raise ulimit -n",
			append(fields, "fds_needed", need)...)
	default:
		o.Log.Info("file descriptor limit", append(fields, "fds_needed", need)...)
	}
}
