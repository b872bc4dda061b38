package sockstat

import (
	"sync"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// connHandle is the flow.ConnObserver a Sampler's Open returns for one
// connection: its hold on the socket (shared with the other streams of a
// multiplexed connection) and its stream, if it is one. Closing and
// Closed each let go once, whichever comes first: Closing while the
// socket can still be read, so the last holder takes a last sample.
type connHandle struct {
	flow.Nop                // the flow events other than Closing and Closed are of no use here
	socket   *SampledConn   // nil: the socket is not read
	stream   *sampledStream // nil: not a stream
	once     sync.Once
}

var _ flow.ClosingObserver = (*connHandle)(nil)

// Closing implements flow.ClosingObserver.
func (h *connHandle) Closing() { h.once.Do(func() { h.leave(true) }) }

// Closed implements flow.ConnObserver: a connection closed without Closing
// lets go now (its socket is closed by then, so there is nothing left to
// read of it; the stream layer's last figures still are).
func (h *connHandle) Closed(error) { h.once.Do(func() { h.leave(false) }) }

func (h *connHandle) leave(closing bool) {
	if h.stream != nil {
		h.stream.leave()
	}
	if h.socket != nil {
		h.socket.leave(closing)
	}
}
