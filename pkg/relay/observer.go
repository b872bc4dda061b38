package relay

import (
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// Side names one of a relay's two connections.
type Side string

// The sides of a relay.
const (
	Downstream Side = "downstream" // towards the client: accepted
	Upstream   Side = "upstream"   // towards the server: dialled
)

// Observer receives what a relay's buffers do. pkg/metrics implements it;
// implementations must be safe for concurrent use. Both connections' own
// events (writes, reads, acks) go to a flow.Observer, as in every binary.
type Observer interface {
	// Buffered is called with every change of the payload bytes a
	// direction's buffers hold (read, not yet accepted by the writer).
	Buffered(dir flow.Direction, delta int64)
	// Capacity is called with +capacity when a connection's buffer opens
	// and -capacity when it closes.
	Capacity(dir flow.Direction, delta int64)
	// ReadingPaused is called when a reader stops because its buffer (or
	// the shared budget) is full, paused = true, and when it resumes, with
	// the time it was stopped.
	ReadingPaused(dir flow.Direction, paused bool, stopped time.Duration)
	// BudgetWaiting is called when a reader starts waiting for room in the
	// shared budget (Config.Budget) for bytes it has read, waiting = true,
	// and when it got the room or its connection ended, with the time it
	// waited. Such a wait is also a pause in reading (ReadingPaused).
	BudgetWaiting(dir flow.Direction, waiting bool, waited time.Duration)
	// Failed is called once for every relayed connection that ended with an
	// error, with the side whose connection failed.
	Failed(side Side, err error)
}

// Nop is an Observer that ignores everything: the default.
type Nop struct{}

var _ Observer = Nop{}

func (Nop) Buffered(flow.Direction, int64)                    {}
func (Nop) Capacity(flow.Direction, int64)                    {}
func (Nop) ReadingPaused(flow.Direction, bool, time.Duration) {}
func (Nop) BudgetWaiting(flow.Direction, bool, time.Duration) {}
func (Nop) Failed(Side, error)                                {}

// PipeStats counts one direction of a relayed connection.
type PipeStats struct {
	Read    int64 // payload bytes read from the source side
	Written int64 // payload bytes the destination side accepted
	// Spliced is the payload bytes of Read that went socket to socket
	// through a kernel pipe (splice(2)), never through the relay's memory.
	Spliced int64
}

// Stats is what one relayed connection carried.
type Stats struct {
	// Hello is the hello sent upstream (with this relay in Via); nil for a
	// raw connection.
	Hello *flow.Hello
	Up    PipeStats // downstream to upstream
	Down  PipeStats // upstream to downstream
}
