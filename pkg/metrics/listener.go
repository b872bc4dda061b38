package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Listeners are the values of the listener label: the HTTP listener
// (/ws and the binary's endpoints, or bp-relay's --metrics-addr) and the
// raw TCP one.
var Listeners = []string{"http", "tcp", "grpc"}

// AcceptErrorReasons are the reasons a listener's accept() failed for a
// while (it backs off and tries again): fd_limit (EMFILE, ENFILE: out of
// file descriptors), memory (ENOBUFS, ENOMEM), network (an error the
// kernel passes on from a connection being accepted) and other.
var AcceptErrorReasons = []string{"fd_limit", "memory", "network", "other"}

// HTTPCloseReasons are why an HTTP listener closed a connection to stay
// within --max-http-connections: idle (the oldest idle keep-alive
// connection), headers (the oldest connection still sending its request
// headers) or full (every connection busy with a request: the new one).
var HTTPCloseReasons = []string{"idle", "headers", "full"}

// Listener holds the metrics of the listening binaries' accept loops and
// HTTP connections (bp-server and bp-relay).
type Listener struct {
	AcceptErrors *prometheus.CounterVec
	HTTPClosed   *prometheus.CounterVec
	// HTTPPaused is how long HTTP listeners held off accepting because
	// --max-http-connections was reached and no connection could yet be
	// closed for a new one: new connections waited in the kernel's accept
	// queue meanwhile.
	HTTPPaused prometheus.Counter
}

// NewListener registers the listener metrics on reg, every series at zero.
func NewListener(reg prometheus.Registerer) *Listener {
	f := promauto.With(reg)
	l := &Listener{
		AcceptErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_accept_errors_total",
			Help: "Failed accept() calls of a listener, which backs off (5 ms doubling to 1 s) and tries again.",
		}, []string{"listener", "reason"}),
		HTTPClosed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "bp_http_connections_closed_total",
			Help: "HTTP connections (not WebSockets) closed to stay within --max-http-connections.",
		}, []string{"reason"}),
		HTTPPaused: f.NewCounter(prometheus.CounterOpts{
			Name: "bp_http_accept_paused_seconds_total",
			Help: "Seconds HTTP listeners did not accept because --max-http-connections was reached and every connection was busy or had been waiting for its headers less than 1 s; new connections waited in the kernel's accept queue.",
		}),
	}
	for _, ln := range Listeners {
		for _, r := range AcceptErrorReasons {
			l.AcceptErrors.WithLabelValues(ln, r)
		}
	}
	for _, r := range HTTPCloseReasons {
		l.HTTPClosed.WithLabelValues(r)
	}
	return l
}
