package verdict

import "fmt"

// Units names what a run's figures are summed over: its runs are
// connections, or, with --streams on HTTP/2 and gRPC, the streams of
// fewer connections. Each stream is a run of its own (its own writes,
// acks and timeline), so times sum over streams, while the kernel's
// figures sum over the sockets the streams share.
type Units struct {
	// Runs is how many runs there were: connections, or streams.
	Runs int
	// Connections is, when the runs are streams, how many connections
	// carry them; 0 when each run is a connection of its own.
	Connections int
}

// Streams reports whether the runs are streams.
func (u Units) Streams() bool { return u.Connections > 0 }

// Noun is what one run is: "connection" or "stream".
func (u Units) Noun() string {
	if u.Streams() {
		return "stream"
	}
	return "connection"
}

// Count is n runs in words: "3 connection(s)", "3 stream(s)".
func (u Units) Count(n int) string { return fmt.Sprintf("%d %s(s)", n, u.Noun()) }

// Over is "over 4 connections" or "over 8 streams on 2 connections".
func (u Units) Over() string {
	if u.Streams() {
		return fmt.Sprintf("over %d streams on %d connection%s", u.Runs, u.Connections, plural(u.Connections))
	}
	return fmt.Sprintf("over %d connections", u.Runs)
}

// Per is "per connection" or "per stream".
func (u Units) Per() string { return "per " + u.Noun() }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
