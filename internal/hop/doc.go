// Package hop is what bp-server and bp-relay share in front of their
// per-connection work: the setup (metrics, socket sampler, guard,
// listeners), the downstream listeners (HTTP with /ws, raw TCP),
// admission through the guard, tracking of every connection (hijacked
// WebSocket ones included), the connection log, and the shutdown in a
// fixed order.
//
//	Start:  registry, core metrics, socket sampler (running), host metrics,
//	        listener metrics, RLIMIT_NOFILE raised and checked against the
//	        limits, Hop (guard, upgrader), TLS, HTTP and TCP listeners
//	        (each a retryListener under TLS)  -> Setup
//	Accept: EMFILE, ENOBUFS, ... -> count, log (bounded), back off, retry
//	HTTP:   ConnState -> httpConns: over --max-http-connections the oldest
//	        idle connection, or one sending headers for 1 s, is closed;
//	        until one may be, the listener does not accept
//	Serve:  HTTP server | TCP accept loop -> guard -> hello -> Handler
//	Handler: ConnLogger.With (logged or not, at a bounded rate) -> Opened
//	        -> the binary's own work -> Closed
//	ctx ends: stop accepting -> cancel connections -> wait (bounded) -> return
//	Setup.Close: cancel connections, wait for the sampler, close listeners
//
// Each binary keeps only what is its own: bp-server its session, pacing
// and web page; bp-relay its relay, buffers and separate metrics listener.
package hop
