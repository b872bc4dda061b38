package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// reconnectPolicy says whether and how a connection that broke, or could
// not be made, is made again (--reconnect).
type reconnectPolicy struct {
	max  int           // attempts per connection; 0: never
	wait time.Duration // before the first attempt; doubles with each
	cap  time.Duration // the longest wait
}

// backoff is the wait before attempt n (0-based): wait·2ⁿ, at most cap,
// of which a random half (jitter), so connections that broke together do
// not come back together.
func (p reconnectPolicy) backoff(n int) time.Duration {
	d := p.wait << min(n, 30)
	if d > p.cap || d <= 0 {
		d = p.cap
	}
	return d/2 + rand.N(d/2+1)
}

// connRun is what one of a run's connections needs.
type connRun struct {
	dial        func(context.Context, flow.Hello) (flow.Conn, error)
	hello       flow.Hello
	plan        flow.Plan
	obs         flow.Observer
	retry       reconnectPolicy
	onReconnect func()        // counts an attempt to connect again
	onNoConnect func(error)   // counts and logs an attempt that could not connect
	dialing     chan struct{} // a token per attempt in flight (--dial-concurrency)
	log         *slog.Logger
}

// runConn runs one of the run's connections to its end. With a reconnect
// policy, a connection that breaks is made again and goes on with what is
// left of its run: the bytes its peer had not acknowledged (or, for the
// server's writing, not delivered) are sent again, and a duration counts
// from the first attempt.
//
// Its frame, runOnce's and their callers' stay on the connection's
// goroutine stack while the connection lives, so they hold pointers, and
// the rare paths (a reconnect, an error's text) are functions of their own:
// with hello and plan by value and the retry log inline, this frame alone
// took 1.9 KiB, and the goroutine's stack grew from 4 to 8 KiB.
func runConn(ctx context.Context, cr *connRun) error {
	start := time.Now()
	var acked, read int64 // delivered over every attempt so far
	for attempt := 0; ; attempt++ {
		hello, plan, left := &cr.hello, &cr.plan, true
		if attempt > 0 {
			if hello, plan, left = cr.restOf(start, acked, read); !left {
				return nil
			}
		}
		snap, connected, err := runOnce(ctx, cr.dialing, cr.dial, hello, plan, cr.obs)
		if !connected && err != nil && ctx.Err() == nil {
			cr.onNoConnect(err)
		}
		acked += snap.Acked
		read += snap.Read
		if err == nil || ctx.Err() != nil {
			return err
		}
		if attempt >= cr.retry.max || permanent(err) {
			return err
		}
		if !cr.waitRetry(ctx, attempt, acked, read, err) {
			return err
		}
	}
}

// waitRetry logs a broken connection and waits for the reconnect's
// backoff; false: ctx ended first.
func (cr *connRun) waitRetry(ctx context.Context, attempt int, acked, read int64, err error) bool {
	wait := cr.retry.backoff(attempt)
	cr.log.Warn("connection broke, reconnecting", "attempt", attempt+1, "of", cr.retry.max,
		"wait", wait.Round(time.Millisecond).String(), "bytes_acked", acked, "bytes_read", read,
		"reason", flow.ErrorReason(err), "err", err)
	t := time.NewTimer(wait)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		return false
	}
	cr.onReconnect()
	return true
}

// openApart dials and prepares the connection's session in a goroutine of
// its own, which ends with them: resolving, connecting and the observers'
// Open (label lookups) take more than 4 KiB of stack, and a goroutine's
// stack, once grown, stays grown until a garbage collection finds it mostly
// unused, which a client of slow connections seldom runs. The
// connection's goroutine, which lives as long as the connection, so keeps a
// small stack: 4 KiB less per connection (perf probe on runtime.morestack:
// the growth was in the dial and in NewSession's observer Open).
//
// It waits for a token of dialing first (--dial-concurrency): 19,000
// WebSocket dials at once on two cores kept the client more than a second
// from connect to request, which bp-server (rightly) takes for a slow peer
// once it is at --max-http-connections; the 10 s for the dial start after it.
func openApart(ctx context.Context, dialing chan struct{}, dial func(context.Context, flow.Hello) (flow.Conn, error), hello *flow.Hello, plan *flow.Plan, obs flow.Observer) (*flow.Session, error) {
	type opened struct {
		s   *flow.Session
		err error
	}
	select {
	case dialing <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	got := make(chan opened, 1)
	go func() {
		defer func() { <-dialing }()
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := dial(dctx, *hello)
		if err != nil {
			got <- opened{nil, err}
			return
		}
		got <- opened{flow.NewSession(c, *plan, obs), nil}
	}()
	o := <-got
	return o.s, o.err
}

// runOnce dials one connection and runs its session; connected is false
// when the dial (or the handshake, or the hello) failed. A break says how
// far the connection got.
func runOnce(ctx context.Context, dialing chan struct{}, dial func(context.Context, flow.Hello) (flow.Conn, error), hello *flow.Hello, plan *flow.Plan, obs flow.Observer) (snap flow.Snapshot, connected bool, err error) {
	sess, err := openApart(ctx, dialing, dial, hello, plan, obs)
	if err != nil {
		if ctx.Err() != nil {
			return flow.Snapshot{}, false, ctx.Err()
		}
		return flow.Snapshot{}, false, fmt.Errorf("cannot reach the target: %w%s", err, tlsHint(err))
	}
	snap, err = sess.Run(ctx)
	if err != nil && ctx.Err() == nil {
		return snap, true, brokeAfter(snap, plan, err)
	}
	return snap, true, err
}

// brokeAfter says how far a connection that broke got.
func brokeAfter(snap flow.Snapshot, plan *flow.Plan, err error) error {
	var got string
	if plan.Write != nil {
		got = fmt.Sprintf("%d bytes written, %d acknowledged by the server", snap.Written, snap.Acked)
	}
	if plan.PeerWrites {
		if got != "" {
			got += ", "
		}
		got += fmt.Sprintf("%d bytes read", snap.Read)
	}
	return fmt.Errorf("connection broke after %s: %w", got, err)
}

// restOf is rest, on the heap: it keeps runConn's frame small (not
// inlined: inlined, its copies of hello and plan were 1 KiB of that frame).
//
//go:noinline
func (cr *connRun) restOf(start time.Time, acked, read int64) (*flow.Hello, *flow.Plan, bool) {
	h, p, left := cr.rest(start, acked, read)
	return &h, &p, left
}

// rest is the hello and plan for what is left of the connection's run
// after acked bytes of its writing and read bytes of the server's were
// delivered; left is false when nothing is.
func (cr connRun) rest(start time.Time, acked, read int64) (flow.Hello, flow.Plan, bool) {
	h, p := cr.hello, cr.plan
	upLeft, downLeft := p.Write != nil, p.PeerWrites
	var timeLeft time.Duration
	if h.DurationMS > 0 {
		timeLeft = h.Duration() - time.Since(start)
		if timeLeft <= 0 {
			return h, p, false
		}
		h.DurationMS = max(timeLeft.Milliseconds(), 1)
	}
	if p.Write != nil {
		w := *p.Write
		if w.TotalBytes > 0 {
			w.TotalBytes -= acked
			upLeft = w.TotalBytes > 0
		}
		if timeLeft > 0 {
			w.Duration = timeLeft
		}
		p.Write = &w
	}
	if p.PeerWrites && h.Direction.ServerWrites() && h.TotalBytes > 0 {
		downLeft = h.TotalBytes-read > 0
	}
	switch {
	case !upLeft && !downLeft:
		return h, p, false
	case !upLeft: // only the server's writing is left
		h.Direction, p.Write = flow.Down, nil
	case !downLeft && h.Direction == flow.Both: // only the client's
		h.Direction, p.PeerWrites = flow.Up, false
	}
	// The hello's total is the writer's: the server's when it writes.
	switch {
	case h.Direction.ServerWrites() && h.TotalBytes > 0:
		h.TotalBytes -= read
	case p.Write != nil:
		h.TotalBytes = p.Write.TotalBytes
	}
	return h, p, true
}
