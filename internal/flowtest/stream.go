package flowtest

import (
	"sync"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// Stream is a flow.StreamConn with figures the test sets: for unit tests
// of what reads the stream layer (the sampler's account, the bp_stream_*
// metrics), not of a transport's figures, which the transports' own tests
// and e2e check on real streams.
type Stream struct {
	Index int
	mu    sync.Mutex
	stats flow.StreamStats
}

// NewStream is a Stream at index with stats as its first figures.
func NewStream(index int, stats flow.StreamStats) *Stream {
	return &Stream{Index: index, stats: stats}
}

// StreamIndex is the stream's place on its connection (flow.StreamConn).
func (s *Stream) StreamIndex() int { return s.Index }

// StreamLayer returns the figures last set (flow.StreamConn).
func (s *Stream) StreamLayer() flow.StreamStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Set changes the figures, as a transport's would between two polls.
func (s *Stream) Set(f func(*flow.StreamStats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.stats)
}
