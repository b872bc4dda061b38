package flow

import (
	"context"
	"errors"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// rateWait paces a writer to a rate (bp-client --rate) as rate.Limiter's
// Wait does, through one timer of its own: Wait makes a timer for every
// wait, about 300 bytes of garbage per write, which at 19,000 slow
// connections writing once a second each was a third of the client's
// garbage, and garbage is what grows a process of slow connections past
// its live heap between two collections (docs/BENCHMARKS.md, "Many slow
// connections").
//
// The limiter's burst is the turns of one timerGrain (1 up to 909 a
// second), so a turn missed is lost: after a write that blocked, the
// writer goes on at the rate and does not burst to catch up, which would
// hit the path harder just as it recovers. A wake-up later than a grain
// loses its turn the same way, so on a busy machine the achieved rate
// falls short of the asked one (64 KiB at 160 a second came out at 35 in
// one CI run), and the report says so.
type rateWait struct {
	lim   *rate.Limiter
	timer *time.Timer
}

// errRateDeadline: the next write's turn came after the context's
// deadline (the run's end), which wait waited for.
var errRateDeadline = errors.New("rate: wait would exceed the context's deadline")

// timerGrain is about how late a short timer fires: Go's runtime sleeps
// in whole milliseconds when it has nothing else to do (its netpoller's
// timeout), so a wait of 100 or 500 µs took 1.1 ms on the 2-core VM. With
// a burst of one, each such wake-up lost the rest of a turn, and --rate
// 2000 of 16 KiB on an HTTP/2 stream wrote about 780 messages a second,
// quiet. A burst of one grain's turns keeps rates above 1 per ms and
// lets a writer catch up at most one grain.
const timerGrain = 1100 * time.Microsecond

func newRateWait(perSecond float64) *rateWait {
	t := time.NewTimer(time.Hour)
	t.Stop()
	burst := max(1, int(math.Ceil(perSecond*timerGrain.Seconds())))
	return &rateWait{lim: rate.NewLimiter(rate.Limit(perSecond), burst), timer: t}
}

// wait blocks until the next write's turn; when that turn comes after
// ctx's deadline it waits until the deadline and returns errRateDeadline,
// and when ctx ends first it returns ctx's error. It
// asks the limiter for tokens, not reservations (ReserveN returns one on
// the heap), so it allocates nothing.
func (w *rateWait) wait(ctx context.Context) error {
	for {
		now := time.Now()
		if w.lim.AllowN(now, 1) {
			return nil
		}
		d := time.Duration((1 - w.lim.TokensAt(now)) / float64(w.lim.Limit()) * float64(time.Second))
		d = max(d, time.Microsecond)
		if dl, ok := ctx.Deadline(); ok && now.Add(d).After(dl) {
			// The next turn is past the run's end, but the run still
			// lasts its time: returning at once, as Limiter.Wait does,
			// ended a connection at --rate 1 --duration 8s after 7 s,
			// its report saying 7 s.
			<-ctx.Done()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return errRateDeadline
			}
			return ctx.Err()
		}
		w.timer.Reset(d)
		select {
		case <-w.timer.C:
		case <-ctx.Done():
			w.timer.Stop()
			return ctx.Err()
		}
	}
}

func (w *rateWait) stop() { w.timer.Stop() }
