package lab

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/go-backpressure/go-backpressure/internal/netlab"
	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/report"
)

// Piece is one place on the path where unread bytes sat, for the byte map.
type Piece struct {
	Hop   string  `json:"hop"`   // "bp-client", a hop's name, "bp-server"
	Place string  `json:"place"` // "send queue", "downstream receive queue", "buffer", "upstream send queue", "receive queue"
	Bytes float64 `json:"bytes"`
	// Measured is false for a place no counter shows while a connection is
	// open (nginx's and Caddy's own buffers): Bytes is then 0 and MaxBytes
	// is what the configuration lets it hold.
	Measured bool    `json:"measured"`
	MaxBytes float64 `json:"max_bytes,omitempty"`
	Source   string  `json:"source"` // the metric or counters it came from
}

// ByteMap is where the bytes the client had written and the server had not
// read sat, hop by hop, at one moment: when the client's write first
// blocked after the server stopped reading (Moment "first_block"), or,
// when it never blocked, when the most was unread during the stop
// ("stall_peak"). Its pieces must add up to InPipeBytes within
// ToleranceBytes; ClosingErrorBytes says by how much they do not.
type ByteMap struct {
	Moment    string  `json:"moment"`
	AtSeconds float64 `json:"at_seconds"` // since the lab started polling, just before the client
	Pieces    []Piece `json:"pieces"`     // client to server
	// TotalBytes is the pieces' sum; InPipeBytes the client's
	// bp_bytes_written_total minus the server's bp_bytes_read_total in the
	// same snapshot; ClosingErrorBytes is TotalBytes - InPipeBytes.
	TotalBytes        float64 `json:"total_bytes"`
	InPipeBytes       float64 `json:"in_pipe_bytes"`
	ClosingErrorBytes float64 `json:"closing_error_bytes"`
	// ToleranceBytes is what the pieces may differ by: one payload write
	// per writer that counts a write when it returns (the client's blocked
	// write is partly in its send queue but not yet counted as written; a
	// bp-relay's blocked upstream write is partly in its send queue and
	// still in its buffer gauge), the frame headers the kernel queues hold
	// but payload counters leave out, and what unmeasured places may hold.
	ToleranceBytes float64 `json:"tolerance_bytes"`
	Closes         bool    `json:"closes"`
	// Settled is true when the map comes from a snapshot whose pieces
	// equal the one before it in the same moment (settleMap): every
	// sampler had read the kernel since the moment began. False when the
	// moment ended first, as on a machine busy enough to hold the samplers'
	// passes back: the pieces may then be of different instants, and the
	// closing line (ClosingLine) says so.
	Settled bool `json:"settled"`
	// InFlightBytes is what the links' senders had sent and not had
	// acknowledged (hosts of their own only): a place of its own, and part
	// of the tolerance, since the receiver may hold some of it already.
	InFlightBytes float64 `json:"in_flight_bytes,omitempty"`
	MostHop       string  `json:"most_hop"` // the hop that held the most, its pieces together
	MostHopBytes  float64 `json:"most_hop_bytes"`
	MostPlace     string  `json:"most_place"` // that hop's largest place
}

// headerBytes is the most protocol bytes one payload message carries on
// the wire beyond its payload: the 5-byte frame header on TCP, at most 14
// bytes of masked WebSocket frame header for each of the client's frames
// (flow.WebSocketFrameSize of payload each: one for a 64 KiB message), and
// on HTTP/2 the 5-byte frame header inside DATA frames of 9 bytes' header
// each (a 64 KiB message is four or five of them at the usual 16 KiB frame
// size: 5 + 5*9).
func headerBytes(scheme string, payload int) float64 {
	switch scheme {
	case "ws":
		return 14 * math.Max(1, math.Ceil(float64(payload)/flow.WebSocketFrameSize))
	case "h2c":
		return 50
	case "grpc":
		// gRPC's 5-byte message prefix, the message's protobuf tag and
		// length (4 bytes at 64 KiB), in DATA frames of 9 bytes' header
		// each (grpc-go sends 16 KiB frames: five for a 64 KiB message).
		return 5 + 4 + 5*9
	}
	return 5
}

// multiplexed reports whether the client's scheme runs streams over
// HTTP/2, whose server holds a stream's bytes past the socket.
func multiplexed(scheme string) bool { return scheme == "h2c" || scheme == "grpc" }

// snapshotState reads the two ends' live state from a snapshot.
type snapshotState struct {
	complete bool    // every endpoint answered
	stalled  bool    // a client write is blocked past the stall threshold
	paused   bool    // the server's reader is paused
	inPipe   float64 // client written minus server read, payload bytes
}

func stateOf(s snapshot, keys []string) snapshotState {
	var st snapshotState
	st.complete = true
	for _, k := range keys {
		if _, ok := s.pages[k]; !ok {
			st.complete = false
		}
	}
	if !st.complete {
		return st
	}
	cli, srv := s.pages["bp-client"], s.pages["bp-server"]
	stalled, _ := cli.sum("bp_writes_stalled", nil)
	paused, _ := srv.sum("bp_reads_paused", nil)
	written, _ := cli.sum("bp_bytes_written_total", nil)
	read, _ := srv.sum("bp_bytes_read_total", nil)
	st.stalled, st.paused, st.inPipe = stalled >= 1, paused >= 1, written-read
	return st
}

// buildByteMap reads the pieces from the snapshot of the moment: the
// client's send queue, each hop's three places, the server's receive
// queue. The moment is the client's first block: its first snapshot in
// which a client write is stalled while the server is paused. Without a
// block (a hop that takes everything the client writes in its run, on a
// machine too busy for the client to fill it), the most in the pipe while
// the server was paused ("stall_peak"). Either way the map is taken once
// the moment holds still (settleMap).
func buildByteMap(snaps []snapshot, keys []string, hops []*hop, flights []flight, scheme string, payload int) *ByteMap {
	at := func(s snapshot, moment string) *ByteMap {
		return mapAt(s, keys, hops, flights, moment, scheme, payload)
	}
	for i, s := range snaps {
		if st := stateOf(s, keys); st.complete && st.stalled && st.paused {
			return settleMap(snaps, i, keys, "first_block", func(n snapshotState) bool { return n.stalled }, at)
		}
	}
	peak := -1
	for i, s := range snaps {
		if st := stateOf(s, keys); st.complete && st.paused && (peak < 0 || st.inPipe > stateOf(snaps[peak], keys).inPipe) {
			peak = i
		}
	}
	if peak < 0 {
		return nil
	}
	return settleMap(snaps, peak, keys, "stall_peak", func(snapshotState) bool { return true }, at)
}

// settleMap is the map of the moment that starts at snaps[i]. While nothing
// is written or read (the server paused, the client blocked or done) every
// later snapshot with the same counters is the same moment; the map is
// taken from the first of them whose pieces equal the previous one's,
// because each sampler reads the kernel on a 100 ms clock of its own, and
// bytes still crossing from one queue into the next just after the moment
// began would otherwise be counted on both sides, or in none. still says
// what else the moment needs (the client still blocked).
func settleMap(snaps []snapshot, i int, keys []string, moment string, still func(snapshotState) bool, at func(snapshot, string) *ByteMap) *ByteMap {
	st := stateOf(snaps[i], keys)
	first := at(snaps[i], moment)
	chosen, prev := first, first
	for _, next := range snaps[i+1:] {
		nst := stateOf(next, keys)
		if !nst.complete || !nst.paused || !still(nst) || nst.inPipe != st.inPipe {
			break // the client wrote again, or the server read: the moment is over
		}
		m := at(next, moment)
		if chosen == first {
			chosen = m // at least one sampler pass after the moment began
		}
		if samePieces(m, prev) {
			m.Settled = true
			return m
		}
		prev = m
	}
	return chosen
}

// samePieces reports whether two maps hold the same bytes in every place.
func samePieces(a, b *ByteMap) bool {
	if len(a.Pieces) != len(b.Pieces) {
		return false
	}
	for i := range a.Pieces {
		if a.Pieces[i].Bytes != b.Pieces[i].Bytes {
			return false
		}
	}
	return true
}

// mapAt is the byte map of one snapshot.
func mapAt(s snapshot, keys []string, hops []*hop, flights []flight, moment, scheme string, payload int) *ByteMap {
	m := &ByteMap{Moment: moment, AtSeconds: s.at.Seconds(), InPipeBytes: stateOf(s, keys).inPipe}
	if scheme == "grpc" {
		// grpc-go's Send returns once its message is queued: it waits
		// there for the stream's window, past the client's write count.
		q, _ := s.pages["bp-client"].sum("bp_stream_queued_bytes", nil)
		m.Pieces = append(m.Pieces, Piece{Hop: "bp-client", Place: "stream send buffers", Bytes: q, Measured: true,
			Source: "bp_stream_queued_bytes (Send returned, not yet sent as DATA)"})
	}
	send, _ := s.pages["bp-client"].sum("bp_socket_send_queue_bytes", nil)
	m.Pieces = append(m.Pieces, Piece{Hop: "bp-client", Place: "send queue", Bytes: send, Measured: true,
		Source: "bp_socket_send_queue_bytes (sent and not acknowledged, plus not yet sent)"})
	for _, h := range hops {
		m.Pieces = append(m.Pieces, h.pieces(s)...)
	}
	recv, _ := s.pages["bp-server"].sum("bp_socket_recv_queue_bytes", nil)
	m.Pieces = append(m.Pieces, Piece{Hop: "bp-server", Place: "receive queue", Bytes: recv, Measured: true,
		Source: "bp_socket_recv_queue_bytes"})
	if multiplexed(scheme) {
		// Past the socket, a stream's bytes wait in the HTTP/2 server's
		// buffers until the session reads them: up to the stream's window.
		buf, _ := s.pages["bp-server"].sum("bp_stream_buffered_bytes", nil)
		m.Pieces = append(m.Pieces, Piece{Hop: "bp-server", Place: "stream buffers", Bytes: buf, Measured: true,
			Source: "bp_stream_buffered_bytes (DATA received, not yet read by the session)"})
	}
	// The client, and every bp-relay, count a write when it returns: a
	// blocked write is partly in the next socket already but still
	// counted before it (the relay keeps it in bp_relay_buffered_bytes
	// until it is accepted whole).
	writers := 1
	for _, h := range hops {
		if h.name == "bp-relay" {
			writers++
		}
	}
	m.InFlightBytes = addFlights(m, s, flights)
	m.close(scheme, payload, writers)
	return m
}

// close adds the pieces up, sets the closing error and its tolerance, and
// names the hop that held the most.
func (m *ByteMap) close(scheme string, payload, writers int) {
	unmeasured := 0.0
	byHop := map[string]float64{}
	var order []string
	for _, p := range m.Pieces {
		m.TotalBytes += p.Bytes
		if !p.Measured {
			unmeasured += p.MaxBytes
		}
		if _, seen := byHop[p.Hop]; !seen {
			order = append(order, p.Hop)
		}
		byHop[p.Hop] += p.Bytes
	}
	m.ClosingErrorBytes = m.TotalBytes - m.InPipeBytes
	messages := 2.0
	if payload > 0 {
		messages += math.Ceil(math.Max(m.InPipeBytes, 0) / float64(payload))
	}
	m.ToleranceBytes = float64(writers*payload) + messages*headerBytes(scheme, payload) + unmeasured + m.InFlightBytes
	m.Closes = math.Abs(m.ClosingErrorBytes) <= m.ToleranceBytes
	sort.SliceStable(order, func(i, j int) bool { return byHop[order[i]] > byHop[order[j]] })
	m.MostHop, m.MostHopBytes = order[0], byHop[order[0]]
	best := -1.0
	for _, p := range m.Pieces {
		if p.Hop == m.MostHop && p.Bytes > best {
			m.MostPlace, best = p.Place, p.Bytes
		}
	}
}

// Verdict is the lab's own verdict line: which hop held the most when the
// client first blocked, and whether the map closes. pkg/verdict answers
// from the client alone; this one has every hop's figures.
func (m *ByteMap) Verdict() string {
	if m == nil {
		return "no byte map: the server never paused while every endpoint answered"
	}
	when := "when the client's write first blocked"
	if m.Moment == "stall_peak" {
		when = "at the stall's peak (the client never blocked)"
	}
	share := 0.0
	if m.TotalBytes > 0 {
		share = 100 * m.MostHopBytes / m.TotalBytes
	}
	return fmt.Sprintf("%s held the most %s: %s of %s (%.0f%%), most of it in its %s",
		m.MostHop, when, human(m.MostHopBytes), human(m.TotalBytes), share, m.MostPlace)
}

// ClosingLine says how well the pieces add up, with the missing amount when
// they do not: never hidden.
func (m *ByteMap) ClosingLine() string {
	e := m.ClosingErrorBytes
	base := fmt.Sprintf("pieces %s, in the pipe (client written - server read) %s, closing error %+.0f bytes (tolerance %s: a payload write per writer, frame headers, unmeasured buffers)",
		human(m.TotalBytes), human(m.InPipeBytes), e, human(m.ToleranceBytes))
	if !m.Settled {
		base += "; taken before two snapshots of the moment agreed, so its pieces may be of different instants (each process samples the kernel on a 100 ms clock of its own, which a busy machine holds back)"
	}
	switch {
	case m.Closes:
		return "closes: " + base
	case e < 0:
		return fmt.Sprintf("DOES NOT CLOSE: %s of the bytes in the pipe are in no piece; %s", human(-e), base)
	default:
		return fmt.Sprintf("DOES NOT CLOSE: the pieces hold %s more than the pipe; %s", human(e), base)
	}
}

// human is a byte count for people: config.HumanBytes, the binaries' unit.
func human(v float64) string { return config.HumanBytes(v) }

// ResultJSON is one profile in scripts/lab's -json output: the client's
// report, each hop's numbers and the byte map (names in DESIGN.md).
type ResultJSON struct {
	Profile string          `json:"profile"`
	Path    string          `json:"path"`
	Target  string          `json:"target"`
	Error   string          `json:"error,omitempty"`
	Client  *report.Summary `json:"client,omitempty"`
	Hops    []Hop           `json:"hops"`
	ByteMap *ByteMap        `json:"byte_map"`
	// Hosts and Links: a host profile's hosts (namespace, interfaces,
	// addresses) and each link's setting and measured round trip.
	Hosts []netlab.Host `json:"hosts,omitempty"`
	Links []LinkResult  `json:"links,omitempty"`
}

// JSON is the row's -json form; a profile that did not run has only its
// error.
func (row Row) JSON() ResultJSON {
	out := ResultJSON{Profile: row.Profile, Hops: []Hop{}}
	if p, ok := Lookup(row.Profile); ok {
		out.Path = p.Path
	}
	if row.Err != nil {
		out.Error = row.Err.Error()
	}
	if r := row.Result; r != nil {
		out.Target, out.Client, out.ByteMap = r.Target, &r.Client, r.ByteMap
		out.Hosts, out.Links = r.Hosts, r.Links
		if r.Hops != nil {
			out.Hops = r.Hops
		}
	}
	return out
}

// writeSnapshots writes every snapshot's ends and pieces, one line each,
// into the run's directory (kept with -keep), so that a byte map that does
// not close can be followed through the run.
func writeSnapshots(w io.Writer, snaps []snapshot, keys []string, hops []*hop, flights []flight, scheme string, payload int) {
	for _, s := range snaps {
		st := stateOf(s, keys)
		if !st.complete {
			fmt.Fprintf(w, "%7.2fs incomplete\n", s.at.Seconds())
			continue
		}
		m := mapAt(s, keys, hops, flights, "", scheme, payload)
		var parts []string
		for _, p := range m.Pieces {
			parts = append(parts, fmt.Sprintf("%s %s %.0f", p.Hop, p.Place, p.Bytes))
		}
		fmt.Fprintf(w, "%7.2fs stalled %v paused %v in_pipe %.0f total %.0f error %+.0f | %s\n",
			s.at.Seconds(), st.stalled, st.paused, st.inPipe, m.TotalBytes, m.ClosingErrorBytes, strings.Join(parts, ", "))
	}
}
