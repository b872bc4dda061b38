package relay

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// StreamBufferSize is a pipe's buffer in stream mode (Config.Buffer 0):
// one read's worth, so the relay stops reading as soon as its upstream
// write blocks.
const StreamBufferSize = 64 << 10

// blockSize is the unit the buffers hold bytes in: a buffer of N bytes
// uses at most N rounded up to blocks, whatever the size of the reads.
const blockSize = 64 << 10

// Config says how a relay forwards. The zero value is a stream relay with
// no memory cap beyond its per-connection buffers.
type Config struct {
	// Name is appended to the hello's Via list on its way upstream.
	Name string
	// Buffer is the bytes each direction of a connection may hold; 0 is
	// stream mode (StreamBufferSize).
	Buffer int
	// ReadSize is the most bytes one read asks for (flow.DefaultReadSize
	// when 0, at most Buffer).
	ReadSize int
	// Budget caps the bytes all connections sharing it hold together; nil
	// is no cap beyond Buffer.
	Budget *Budget
	// StallThreshold is the blocked time from which a write counts as a
	// stall (flow.DefaultStallThreshold when 0).
	StallThreshold time.Duration
	// LingerTimeout bounds the wait for the last fins and acks once one side
	// has ended (flow.DefaultLingerTimeout when 0).
	LingerTimeout time.Duration
	// DialTimeout bounds dialling upstream (10 s when 0).
	DialTimeout time.Duration
	// Observer gets both connections' events, as for any other binary.
	Observer flow.Observer
	// Buffers gets the relay's own events: buffer fill, pauses, failures.
	Buffers Observer
}

// Dialer connects upstream and sends hello first; hello is nil for a raw
// (hello-less) connection. flow.Dial with a parsed target is one.
type Dialer func(ctx context.Context, hello *flow.Hello) (flow.Conn, error)

// Relay forwards connections upstream, one Serve call per downstream
// connection. It is safe for concurrent use.
type Relay struct {
	cfg  Config
	dial Dialer
}

// New returns a relay that dials upstream with dial.
func New(cfg Config, dial Dialer) *Relay {
	if cfg.Buffer <= 0 {
		cfg.Buffer = StreamBufferSize
	}
	if cfg.ReadSize <= 0 {
		cfg.ReadSize = flow.DefaultReadSize
	}
	cfg.ReadSize = min(cfg.ReadSize, cfg.Buffer, flow.MaxPayloadSize)
	if cfg.Budget != nil {
		cfg.ReadSize = int(min(int64(cfg.ReadSize), cfg.Budget.max))
	}
	if cfg.StallThreshold <= 0 {
		cfg.StallThreshold = flow.DefaultStallThreshold
	}
	if cfg.LingerTimeout <= 0 {
		cfg.LingerTimeout = flow.DefaultLingerTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Observer == nil {
		cfg.Observer = flow.Nop{}
	}
	if cfg.Buffers == nil {
		cfg.Buffers = Nop{}
	}
	return &Relay{cfg: cfg, dial: dial}
}

// Forward returns the hello to send upstream: h with name appended to Via,
// as an HTTP proxy appends itself to the Via header.
func Forward(h flow.Hello, name string) flow.Hello {
	h.Via = append(slices.Clone(h.Via), name)
	return h
}

// Serve relays down, whose hello (nil: hello-less) was already read, to a
// newly dialled upstream until the run ends, either side fails, or ctx
// ends, and closes both. A hello-less or legacy downstream is relayed raw:
// every byte is payload in both directions and an end of stream on one
// side is passed on as a half-close. On an upstream failure the downstream
// connection is closed so that its peer sees an error.
func (r *Relay) Serve(ctx context.Context, down flow.Conn, hello *flow.Hello) (Stats, error) {
	raw := hello == nil || hello.Legacy || !down.SpeaksControl()
	dir := flow.Both
	if !raw {
		dir = hello.Direction
		if dir == "" {
			dir = flow.Up
		}
	}
	var stats Stats
	downObs := r.cfg.Observer.Open(flow.ConnInfo{Protocol: down.Protocol(), Conn: down.NetConn(),
		Writes: dir.ServerWrites(), Reads: dir.ClientWrites()})
	var fwd *flow.Hello
	if !raw {
		h := Forward(*hello, r.cfg.Name)
		if _, err := flow.EncodeHello(h); err != nil {
			// With this relay in Via the hello no longer fits: the
			// downstream peer's hello is too large to forward, and
			// upstream was never dialled (too_large, close 1009).
			err = fmt.Errorf("forward hello: %w", err)
			flow.CloseWithError(down, err)
			downObs.Closed(err)
			r.cfg.Buffers.Failed(Downstream, err)
			return stats, err
		}
		fwd = &h
		stats.Hello = fwd
	}
	dctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	up, err := r.dial(dctx, fwd)
	cancel()
	if err != nil {
		err = fmt.Errorf("dial upstream: %w", err)
		flow.Abort(down, err.Error())
		downObs.Closed(err)
		r.cfg.Buffers.Failed(Upstream, err)
		return stats, err
	}
	upObs := r.cfg.Observer.Open(flow.ConnInfo{Protocol: up.Protocol(), Conn: up.NetConn(),
		Writes: dir.ClientWrites(), Reads: dir.ServerWrites()})
	s := &session{
		cfg: &r.cfg, raw: raw, dir: dir,
		down: newSide(Downstream, down, downObs, &r.cfg),
		up:   newSide(Upstream, up, upObs, &r.cfg),
	}
	s.upPipe = newPipe(flow.Up, &r.cfg)
	s.downPipe = newPipe(flow.Down, &r.cfg)
	err = s.run(ctx)
	stats.Up = s.upPipe.stats()
	stats.Down = s.downPipe.stats()
	return stats, err
}
