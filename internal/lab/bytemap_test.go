package lab

import (
	"strings"
	"testing"
	"time"
)

// page is a snapshot's pages for a direct run: the client's written bytes
// and send queue, the server's read bytes and receive queue.
func page(at time.Duration, stalled, written, sendQ, read, recvQ float64) snapshot {
	return snapshot{at: at, pages: map[string]samples{
		"bp-client": {{name: "bp_writes_stalled", value: stalled}, {name: "bp_bytes_written_total", value: written},
			{name: "bp_socket_send_queue_bytes", value: sendQ}},
		"bp-server": {{name: "bp_reads_paused", value: 1}, {name: "bp_bytes_read_total", value: read},
			{name: "bp_socket_recv_queue_bytes", value: recvQ}},
	}}
}

// TestByteMapSettles: the map is taken once the moment holds still, at the
// first block and, when the client never blocked, at the stall's peak: a
// sampler one pass behind (the client's send queue still showing what has
// since reached the server) is not the moment.
func TestByteMapSettles(t *testing.T) {
	keys := []string{"bp-client", "bp-server"}
	const ms = time.Millisecond
	tests := []struct {
		name   string
		snaps  []snapshot
		moment string
		at     time.Duration
	}{
		// Blocked at 200 ms; the server's receive queue catches up at 300.
		{name: "first block", moment: "first_block", at: 400 * ms, snaps: []snapshot{
			page(100*ms, 0, 500, 200, 0, 300),
			page(200*ms, 1, 1000, 600, 0, 300),
			page(300*ms, 1, 1000, 400, 0, 600),
			page(400*ms, 1, 1000, 400, 0, 600),
		}},
		// Never blocked: the most in the pipe is from 200 ms, when the
		// client's sampler still shows 500 bytes that are in the server's
		// receive queue from 300 ms.
		{name: "stall peak", moment: "stall_peak", at: 400 * ms, snaps: []snapshot{
			page(100*ms, 0, 500, 0, 0, 500),
			page(200*ms, 0, 1000, 500, 0, 1000),
			page(300*ms, 0, 1000, 0, 0, 1000),
			page(400*ms, 0, 1000, 0, 0, 1000),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := buildByteMap(tt.snaps, keys, nil, nil, "tcp", 100)
			if m == nil || m.Moment != tt.moment || time.Duration(m.AtSeconds*float64(time.Second)) != tt.at || !m.Closes || m.TotalBytes != 1000 {
				t.Fatalf("map %+v; want %s at %v, closing on 1000 bytes", m, tt.moment, tt.at)
			}
			if !m.Settled || strings.Contains(m.ClosingLine(), "before two snapshots") {
				t.Errorf("a map taken once two snapshots agreed: settled %v, %q", m.Settled, m.ClosingLine())
			}
		})
	}
}

// TestByteMapUnsettled: when the moment ends before two snapshots of it
// agree (the client wrote again while a sampler was still a pass behind),
// the map is the one after the block began, and says it never settled,
// beside whether it closes: a busy machine once gave a direct run's map a
// closing error of two payloads with nothing to say why.
func TestByteMapUnsettled(t *testing.T) {
	const ms = time.Millisecond
	snaps := []snapshot{
		page(100*ms, 0, 500, 200, 0, 300),
		page(200*ms, 1, 1000, 600, 0, 300),
		page(300*ms, 1, 1000, 900, 0, 600), // the client's sampler late: 500 bytes counted twice
		page(400*ms, 0, 1500, 900, 0, 600), // written again: the moment is over
	}
	m := buildByteMap(snaps, []string{"bp-client", "bp-server"}, nil, nil, "tcp", 100)
	if m == nil || m.Settled || m.AtSeconds != 0.3 || m.Closes {
		t.Fatalf("map %+v; want the unsettled one at 300 ms, not closing", m)
	}
	line := m.ClosingLine()
	for _, want := range []string{"DOES NOT CLOSE: the pieces hold 500 B more than the pipe", "taken before two snapshots of the moment agreed"} {
		if !strings.Contains(line, want) {
			t.Errorf("closing line %q lacks %q", line, want)
		}
	}
}
