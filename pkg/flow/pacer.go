package flow

import (
	"context"
	"time"

	"golang.org/x/time/rate"
)

// ReadSettings make a reader slow on purpose. The zero value reads as fast
// as it can in DefaultReadSize chunks.
type ReadSettings struct {
	// Size is the most bytes one read call asks for.
	Size int
	// Delay is slept after every read call.
	Delay time.Duration
	// Rate limits reading to this many bytes per second; 0 is unlimited.
	Rate int64
	// Pause stops reading entirely on a schedule, so the receive window
	// closes.
	Pause PauseSchedule
}

// FullSpeed is s without its delay, rate and pauses: how a stream whose
// hello asks for full speed is read (bp-client --slow-streams).
func (s ReadSettings) FullSpeed() ReadSettings { return ReadSettings{Size: s.Size} }

// DefaultReadSize is the read size when none is set.
const DefaultReadSize = 64 << 10

// PauseSchedule stops reading After into each connection for For, and
// again every Every (0: once). The zero value never pauses.
type PauseSchedule struct {
	After time.Duration
	For   time.Duration
	Every time.Duration
}

// Active reports whether the schedule pauses at all.
func (s PauseSchedule) Active() bool { return s.For > 0 }

// PausedAt reports whether elapsed (time since the connection started)
// falls in a pause, and if so when that pause ends.
func (s PauseSchedule) PausedAt(elapsed time.Duration) (bool, time.Duration) {
	if !s.Active() || elapsed < s.After {
		return false, 0
	}
	since := elapsed - s.After
	if s.Every > 0 {
		since %= s.Every
	}
	if since < s.For {
		return true, elapsed + s.For - since
	}
	return false, 0
}

// pacer applies ReadSettings around each read call of one connection.
type pacer struct {
	set     ReadSettings
	start   time.Time
	limiter *rate.Limiter
	obs     pacerObserver
}

// pacerObserver is the part of ConnObserver the pacer reports to.
type pacerObserver interface {
	Paused(paused bool, stopped time.Duration)
	Throttled(d time.Duration)
}

func newPacer(set ReadSettings, start time.Time, obs pacerObserver) *pacer {
	if set.Size <= 0 {
		set.Size = DefaultReadSize
	}
	p := &pacer{set: set, start: start, obs: obs}
	if set.Rate > 0 {
		// The burst must hold one read, or WaitN could never succeed.
		p.limiter = rate.NewLimiter(rate.Limit(set.Rate), set.Size)
		p.limiter.AllowN(start, p.limiter.Burst()) // start empty: no initial burst
	}
	return p
}

// pauses reports whether beforeRead can wait; slows, whether afterRead
// can. A reader at full speed skips both calls and the clock reads around
// them (three clock reads per read call on the server of an upload,
// before).
func (p *pacer) pauses() bool { return p.set.Pause.Active() }
func (p *pacer) slows() bool  { return p.set.Delay > 0 || p.limiter != nil }

// beforeRead waits out a scheduled pause.
func (p *pacer) beforeRead(ctx context.Context) error {
	paused, until := p.set.Pause.PausedAt(time.Since(p.start))
	if !paused {
		return nil
	}
	began := time.Now()
	p.obs.Paused(true, 0)
	err := sleep(ctx, time.Until(p.start.Add(until)))
	p.obs.Paused(false, time.Since(began))
	return err
}

// afterRead applies the delay and the rate limit for n bytes just read.
func (p *pacer) afterRead(ctx context.Context, n int) error {
	if p.set.Delay <= 0 && p.limiter == nil {
		return nil
	}
	began := time.Now()
	if p.limiter != nil && n > 0 {
		if err := p.limiter.WaitN(ctx, n); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
	if p.set.Delay > 0 {
		if err := sleep(ctx, p.set.Delay); err != nil {
			return err
		}
	}
	p.obs.Throttled(time.Since(began))
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
