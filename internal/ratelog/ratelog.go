package ratelog

import (
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults: a burst of 5 lines per reason, then one every 10 s.
const (
	DefaultEvery = 10 * time.Second
	DefaultBurst = 5
)

// Logger logs through log, at most burst lines at once and then one per
// every, per reason. It is safe for concurrent use.
type Logger struct {
	log   *slog.Logger
	every time.Duration
	burst int

	mu      sync.Mutex
	reasons map[string]*bucket
}

type bucket struct {
	limiter    *rate.Limiter
	suppressed int64
}

// New returns a Logger with the default rate.
func New(log *slog.Logger) *Logger { return NewRate(log, DefaultEvery, DefaultBurst) }

// NewRate returns a Logger of burst lines, then one per every, per reason.
func NewRate(log *slog.Logger, every time.Duration, burst int) *Logger {
	return &Logger{log: log, every: every, burst: burst, reasons: map[string]*bucket{}}
}

// Warn logs msg at warning level with "reason" and args, unless reason has
// used up its lines; then it only counts the line, and the next line of
// that reason says how many were suppressed.
func (l *Logger) Warn(reason, msg string, args ...any) {
	ok, suppressed := l.Allow(reason)
	if !ok {
		return
	}
	args = append(args, "reason", reason)
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	l.log.Warn(msg, args...)
}

// Allow takes a line of reason's budget for a caller that writes its own
// lines (at its own level, or several lines per event, as the connection
// log's opened and closed pair). ok false: the line is to be dropped, and
// it is counted; ok true: suppressed is how many were dropped since the
// last allowed one, which the caller should log.
func (l *Logger) Allow(reason string) (ok bool, suppressed int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.reasons[reason]
	if b == nil {
		b = &bucket{limiter: rate.NewLimiter(rate.Every(l.every), l.burst)}
		l.reasons[reason] = b
	}
	if !b.limiter.Allow() {
		b.suppressed++
		return false, 0
	}
	suppressed = b.suppressed
	b.suppressed = 0
	return true, suppressed
}

// Log is the logger lines go to.
func (l *Logger) Log() *slog.Logger { return l.log }

// Suppressed is how many lines of reason were dropped since its last line.
func (l *Logger) Suppressed(reason string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.reasons[reason]; b != nil {
		return b.suppressed
	}
	return 0
}
