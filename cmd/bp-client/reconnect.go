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
	onReconnect func() // counts an attempt to connect again
	log         *slog.Logger
}

// runConn runs one of the run's connections to its end. With a reconnect
// policy, a connection that breaks is made again and goes on with what is
// left of its run: the bytes its peer had not acknowledged (or, for the
// server's writing, not delivered) are sent again, and a duration counts
// from the first attempt.
func runConn(ctx context.Context, cr connRun) error {
	start := time.Now()
	var acked, read int64 // delivered over every attempt so far
	for attempt := 0; ; attempt++ {
		hello, plan, left := cr.hello, cr.plan, true
		if attempt > 0 {
			hello, plan, left = cr.rest(start, acked, read)
		}
		if !left {
			return nil
		}
		snap, err := runOnce(ctx, cr.dial, hello, plan, cr.obs)
		acked += snap.Acked
		read += snap.Read
		if err == nil || ctx.Err() != nil {
			return err
		}
		if attempt >= cr.retry.max || permanent(err) {
			return err
		}
		wait := cr.retry.backoff(attempt)
		cr.log.Warn("connection broke, reconnecting", "attempt", attempt+1, "of", cr.retry.max,
			"wait", wait.Round(time.Millisecond).String(), "bytes_acked", acked, "bytes_read", read,
			"reason", flow.ErrorReason(err), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		cr.onReconnect()
	}
}

// dialApart dials in a goroutine of its own, which ends with the dial:
// resolving and connecting take more than 4 KiB of stack, and a goroutine's
// stack, once grown, stays grown (until a garbage collection finds it
// mostly unused, which a client of slow connections seldom runs). The
// connection's goroutine, which lives as long as the connection, so keeps
// a small stack: with 19,000 connections, 4 KiB each is 76 MB.
func dialApart(ctx context.Context, dial func(context.Context, flow.Hello) (flow.Conn, error), hello flow.Hello) (flow.Conn, error) {
	type dialed struct {
		c   flow.Conn
		err error
	}
	got := make(chan dialed, 1)
	go func() {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := dial(dctx, hello)
		got <- dialed{c, err}
	}()
	d := <-got
	return d.c, d.err
}

// runOnce dials one connection and runs its session. A break says how far
// the connection got.
func runOnce(ctx context.Context, dial func(context.Context, flow.Hello) (flow.Conn, error), hello flow.Hello, plan flow.Plan, obs flow.Observer) (flow.Snapshot, error) {
	c, err := dialApart(ctx, dial, hello)
	if err != nil {
		if ctx.Err() != nil {
			return flow.Snapshot{}, ctx.Err()
		}
		return flow.Snapshot{}, fmt.Errorf("cannot reach the target: %w%s", err, tlsHint(err))
	}
	snap, err := flow.NewSession(c, plan, obs).Run(ctx)
	if err != nil && ctx.Err() == nil {
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
		return snap, fmt.Errorf("connection broke after %s: %w", got, err)
	}
	return snap, err
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
