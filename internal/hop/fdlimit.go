package hop

import (
	"github.com/go-backpressure/go-backpressure/internal/fdlimit"
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

// fitConnections is the most --max-connections whose need (fdNeed) fits
// in soft file descriptors, the other limits as they are; 0 when none does
// (or the HTTP connections are unbounded).
func fitConnections(l config.Limits, rawListeners, perConn, httpListeners int, soft uint64) int {
	if l.MaxHTTPConnections == 0 {
		return 0
	}
	one := l
	one.MaxConnections = 1
	base, _ := fdNeed(one, rawListeners, perConn, httpListeners) // the need at one connection per listener
	each, _ := fdNeed(config.Limits{MaxConnections: 1}, rawListeners, perConn, 0)
	each -= fdMargin // the fds one more connection per listener takes
	if uint64(base) > soft {
		return 0
	}
	return 1 + int((soft-uint64(base))/uint64(each))
}

// checkFDs raises the soft RLIMIT_NOFILE to the hard one (what servers
// commonly do; Go's runtime does too, since 1.19, but a binary should not
// depend on it silently) and logs both with what the limits need, and
// returns the limits to serve with. A --max-connections left at its
// default that does not fit is lowered to what does (logged: the default
// of 20000 a listener needs more than many containers allow, and a warning
// at every start would teach people to ignore it). Limits set that do not
// fit are kept and warned about, once, with the numbers: beyond the limit
// accept() fails (retried, counted in bp_accept_errors_total{reason=
// "fd_limit"}) before --max-connections refuses anyone.
func checkFDs(o Options) config.Limits {
	l := o.Limits
	soft, hard, err := fdlimit.Raise()
	if err != nil {
		o.Log.Warn("file descriptor limit unknown", "err", err)
		return l
	}
	raw := 0 // the raw TCP and gRPC listeners
	for _, addr := range []string{o.TCPAddr, o.GRPCAddr} {
		if addr != "" {
			raw++
		}
	}
	perConn, httpListeners := max(o.FDsPerConnection, 1), 1+o.ExtraHTTPListeners
	need, unbounded := fdNeed(l, raw, perConn, httpListeners)
	if !unbounded && uint64(need) > soft && l.MaxConnectionsDefault {
		if fit := fitConnections(l, raw, perConn, httpListeners, soft); fit > 0 {
			o.Log.Info("--max-connections (not set) lowered from its default to what the file descriptor limit fits",
				"default", l.MaxConnections, "max_connections", fit, "nofile_soft", soft)
			l.MaxConnections = fit
			need, _ = fdNeed(l, raw, perConn, httpListeners)
		}
	}
	fields := []any{"nofile_soft", soft, "nofile_hard", hard, "max_connections", l.MaxConnections,
		"max_http_connections", l.MaxHTTPConnections, "fds_per_connection", perConn}
	switch {
	case unbounded:
		o.Log.Warn("connection limits off: file descriptors are bound only by the process's limit, beyond which accept fails and is retried", fields...)
	case uint64(need) > soft:
		o.Log.Warn("connection limits exceed the file descriptor limit: accept fails and is retried before --max-connections refuses anyone; lower --max-connections or raise ulimit -n",
			append(fields, "fds_needed", need)...)
	default:
		o.Log.Info("file descriptor limit", append(fields, "fds_needed", need)...)
	}
	return l
}
