//go:build linux

package sockstat

import (
	"errors"
	"maps"
	"testing"
	"time"
)

// TestHostSamplerSides: on loopback, a connection to port P has the
// accepted socket (local P: downstream) and the dialled one (remote P:
// upstream); a hop told P both ways sees one socket a side, with the
// queues the dump reports, and counters that stay when the sockets close.
func TestHostSamplerSides(t *testing.T) {
	writer, reader := tcpPair(t)
	fillPipe(t, writer)
	time.Sleep(100 * time.Millisecond)
	port := addrPort(reader.LocalAddr()).Port()
	var states []PassState
	h := NewHostSampler(HostSamplerOptions{Interval: time.Millisecond, Ports: HopPorts{Downstream: []uint16{port}, Upstream: []uint16{port}},
		OnPass: func(st PassState) { states = append(states, st) }})
	if _, _, err := h.Stats(); !errors.Is(err, ErrNoPass) {
		t.Fatalf("Stats before a pass: err %v, want ErrNoPass", err)
	}
	now := time.Now()
	for i := range 5 {
		if err := h.Sample(now.Add(time.Duration(i) * 100 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	stats, fields, err := h.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || states[0].Err != nil || states[0].Hop != 2 {
		t.Errorf("OnPass heard %+v, want one working pass with 2 hop sockets", states)
	}
	down, up := stats[Downstream], stats[Upstream]
	if down.Sampled != 1 || up.Sampled != 1 {
		t.Fatalf("sampled: downstream %d, upstream %d; want 1 each", down.Sampled, up.Sampled)
	}
	if down.RecvQueue == 0 || up.SendQueue == 0 {
		t.Errorf("downstream recv queue %d, upstream send queue %d: want both > 0 behind a reader that does not read", down.RecvQueue, up.SendQueue)
	}
	if fields&FieldLimited != 0 && up.RwndLimited == 0 {
		t.Errorf("upstream rwnd-limited time 0 for a writer held by the reader's window")
	}
	t.Logf("downstream: %+v", down.Gauges)
	t.Logf("upstream: %+v, rwnd limited %v", up.Gauges, up.RwndLimited)

	writer.Close()
	reader.Close()
	time.Sleep(50 * time.Millisecond)
	if err := h.Sample(now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	after, _, _ := h.Stats()
	if after[Upstream].Sampled != 0 || after[Downstream].Sampled != 0 {
		t.Errorf("closed sockets still sampled: %+v", after)
	}
	if after[Upstream].RwndLimited < up.RwndLimited || after[Upstream].Busy < up.Busy {
		t.Errorf("counters went down when the sockets closed: %v -> %v", up.Counters, after[Upstream].Counters)
	}
	if len(h.socks) != 0 {
		t.Errorf("%d closed sockets still tracked", len(h.socks))
	}
}

// TestHostSamplerUnusedPort: a port no socket uses gives zero
// connections and no minimum window, not a number.
func TestHostSamplerUnusedPort(t *testing.T) {
	h := NewHostSampler(HostSamplerOptions{Interval: time.Millisecond, Ports: HopPorts{Downstream: []uint16{1}, Upstream: []uint16{1}}})
	if err := h.Sample(time.Now()); err != nil {
		t.Fatal(err)
	}
	stats, _, err := h.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for side, st := range stats {
		if st.Sampled != 0 || st.HasOwnWindowMin || st.HasPeerWindowMin || st.RecvQueue != 0 {
			t.Errorf("%s: %+v, want nothing", Side(side), st.Gauges)
		}
	}
}

// TestHostSamplerFailedDump: a dump that fails makes Stats fail (the
// metrics go absent) and is reported once; a working pass clears it.
func TestHostSamplerFailedDump(t *testing.T) {
	var states []PassState
	h := NewHostSampler(HostSamplerOptions{Interval: time.Millisecond, OnPass: func(st PassState) { states = append(states, st) }})
	refused := errors.New("sock_diag: operation not permitted")
	h.dump = func(buf []DiagSocket) ([]DiagSocket, error) { return buf, refused }
	for range 3 {
		if err := h.Sample(time.Now()); !errors.Is(err, refused) {
			t.Fatalf("Sample: %v", err)
		}
	}
	if _, _, err := h.Stats(); !errors.Is(err, refused) {
		t.Errorf("Stats after a failed pass: %v", err)
	}
	h.dump = DumpSockets
	if err := h.Sample(time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Stats(); err != nil {
		t.Errorf("Stats after a working pass: %v", err)
	}
	if len(states) != 2 || !errors.Is(states[0].Err, refused) || states[1].Err != nil {
		t.Errorf("OnPass heard %+v, want the failure once, then the recovery", states)
	}
}

// TestDumpHopSockets: the kernel, given the hop's ports, answers the
// sockets hopClassifier keeps of a whole dump, and no other: the accepted
// socket of a connection to the downstream port, the dialled one of a
// connection to the upstream port (and any other socket of the host on
// those ports).
func TestDumpHopSockets(t *testing.T) {
	w1, r1 := tcpPair(t) // its listener's port is the hop's downstream port
	w2, r2 := tcpPair(t) // its listener's port is the hop's upstream one
	down, up := addrPort(r1.LocalAddr()), addrPort(r2.LocalAddr())
	ports := HopPorts{Downstream: []uint16{down.Port()}, Upstream: []uint16{up.Port()}}
	hop := newHopClassifier(ports)
	for range 20 { // until no socket on those ports opened or closed between the two dumps
		all, err := DumpSockets(nil)
		if err != nil {
			t.Fatal(err)
		}
		some, err := DumpHopSockets(nil, ports)
		if err != nil {
			t.Fatal(err)
		}
		want, got := map[uint64]bool{}, map[uint64]bool{}
		for i := range all {
			if _, ok := hop.side(&all[i]); ok {
				want[all[i].Cookie] = true
			}
		}
		for _, s := range some {
			got[s.Cookie] = true
		}
		accepted, dialled := findDiag(t, some, down, addrPort(w1.LocalAddr())), findDiag(t, some, addrPort(w2.LocalAddr()), up)
		if maps.Equal(got, want) && len(some) == len(got) {
			t.Logf("the filtered dump: %d sockets (ours %d, %d) of the whole dump's %d", len(some), accepted.Cookie, dialled.Cookie, len(all))
			return
		}
		t.Logf("filtered %d sockets, the classifier keeps %d of the whole dump; again", len(got), len(want))
	}
	t.Fatal("the filtered dump never answered the sockets the classifier keeps")
}
