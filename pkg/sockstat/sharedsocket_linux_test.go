//go:build linux

package sockstat

import (
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// TestSamplerCountsSharedSocketOnce: two streams on one real loopback
// socket (two ConnInfos with the same Conn, as a multiplexed connection's
// streams have) are one socket to the sampler: read once per pass, its
// zero-window time counted once, and still sampled until the last of the
// two closes. A second, separate socket counts on its own.
func TestSamplerCountsSharedSocketOnce(t *testing.T) {
	if KernelFields()&FieldPeerWindow == 0 {
		t.Skip("this kernel does not report the peer window (tcpi_snd_wnd, Linux >= 5.4)")
	}
	shared, _ := tcpPair(t)
	other, _ := tcpPair(t)
	fillPipe(t, shared)
	if smp, ok := pollSample(t, newReader(t, shared), func(s Sample) bool { return s.PeerWindow == 0 }); !ok {
		t.Fatalf("the peer window of the filled socket did not close within 2s: %+v", smp)
	}

	s := NewSampler(SamplerOptions{Interval: time.Hour}) // passes by hand, at chosen times
	tcp := flow.ProtocolIndex(flow.TCP)
	first := s.Open(flow.ConnInfo{Protocol: flow.TCP, Conn: shared, Writes: true, Stream: flowtest.NewStream(0, flow.StreamStats{})})
	second := s.Open(flow.ConnInfo{Protocol: flow.TCP, Conn: shared, Writes: true, Stream: flowtest.NewStream(1, flow.StreamStats{})})
	alone := s.Open(flow.ConnInfo{Protocol: flow.TCP, Conn: other, Writes: true})
	defer alone.Closed(nil)

	t0 := time.Now().Add(time.Second) // after Open, so that no pass goes back in time
	pass := func(at time.Duration) ProtocolStats {
		s.Sample(t0.Add(at))
		stats, _ := s.Stats()
		return stats[tcp]
	}
	pass(0)
	if held := s.Totals().HeldPeerWindowClose; !held.IsZero() {
		t.Errorf("a closing seen at one pass only held from %v, want none yet", held)
	}
	st := pass(time.Second)
	if st.Sampled != 2 {
		t.Errorf("pass with two streams on one socket and one other socket: sampled %d sockets, want 2", st.Sampled)
	}
	if st.PeerWindowZeroConns != 1 {
		t.Errorf("peer window zero on %d connections, want 1: the shared socket, once", st.PeerWindowZeroConns)
	}
	if first := s.Totals().FirstPeerWindowClose; !first.Equal(t0) {
		t.Errorf("first peer window close at %v, want the first pass's time %v", first, t0)
	}
	if held := s.Totals().HeldPeerWindowClose; !held.Equal(t0) {
		t.Errorf("the closing shut 1s held from %v, want its start %v", held, t0)
	}
	zero := st.PeerWindowZero
	st = pass(2 * time.Second)
	if got := st.PeerWindowZero - zero; got != time.Second {
		t.Errorf("zero-window time grew by %s in a pass 1s after the last, want 1s (2s would count the socket once per stream)", got)
	}

	first.(flow.ClosingObserver).Closing()
	first.Closed(nil)
	if s.Conn(shared) == nil {
		t.Fatal("the shared socket was unregistered when the first of its two streams closed")
	}
	zero = st.PeerWindowZero
	st = pass(3 * time.Second)
	if st.Sampled != 2 || st.PeerWindowZero-zero != time.Second {
		t.Errorf("after one stream closed: sampled %d sockets, zero-window time +%s; want 2 and +1s", st.Sampled, st.PeerWindowZero-zero)
	}

	second.(flow.ClosingObserver).Closing()
	second.Closed(nil)
	if s.Conn(shared) != nil {
		t.Error("the shared socket is still registered after its last stream closed")
	}
	if st = pass(4 * time.Second); st.Sampled != 1 {
		t.Errorf("after both streams closed: sampled %d sockets, want 1 (the other)", st.Sampled)
	}
}
