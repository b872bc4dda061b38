package config

import (
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// Common settings of every binary.
type Common struct {
	LogFormat string `envconfig:"LOG_FORMAT" flag:"log-format" default:"text" desc:"log format: text or json"`
	// Version is a flag only (ignored by the environment): CI systems and
	// shells commonly set VERSION-like variables, and BP_VERSION=v1.2 must not
	// turn a server into a program that prints its version and exits.
	Version bool `ignored:"true" flag:"version" default:"false" desc:"print the version and exit"`
}

// Validate checks the common settings.
func (c Common) Validate() error {
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return Invalid("log-format", c.LogFormat, "want text or json")
	}
	return nil
}

// Logger builds the slog logger the settings ask for, writing to w.
func (c Common) Logger(w io.Writer) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// Reading is the slow reader's settings, the same on every binary that
// reads payload.
type Reading struct {
	ReadSize   Size          `envconfig:"READ_SIZE" flag:"read-size" default:"64KiB" desc:"most bytes one read call asks for"`
	ReadDelay  time.Duration `envconfig:"READ_DELAY" flag:"read-delay" default:"0s" desc:"sleep after every read call"`
	ReadRate   Size          `envconfig:"READ_RATE" flag:"read-rate" default:"0" desc:"read at most this many bytes per second (0: unlimited)"`
	PauseAfter time.Duration `envconfig:"PAUSE_AFTER" flag:"pause-after" default:"0s" desc:"stop reading this long into each connection"`
	PauseFor   time.Duration `envconfig:"PAUSE_FOR" flag:"pause-for" default:"0s" desc:"length of each reading pause (0: never pause)"`
	PauseEvery time.Duration `envconfig:"PAUSE_EVERY" flag:"pause-every" default:"0s" desc:"repeat the pause with this period, counted from pause start (0: once)"`
	RcvBuf     Size          `envconfig:"RCVBUF" flag:"rcvbuf" default:"0" desc:"SO_RCVBUF for reading sockets (0: kernel default); the kernel doubles it"`
}

// Validate checks the reading settings.
func (r Reading) Validate() error {
	switch {
	case r.ReadSize < 1 || r.ReadSize > flow.MaxPayloadSize:
		return Invalid("read-size", r.ReadSize, "must be between 1 byte and 16MiB")
	case r.ReadDelay < 0:
		return Invalid("read-delay", r.ReadDelay, "must not be negative")
	case r.ReadRate < 0:
		return Invalid("read-rate", r.ReadRate, "must not be negative")
	case r.PauseAfter < 0:
		return Invalid("pause-after", r.PauseAfter, "must not be negative")
	case r.PauseFor < 0:
		return Invalid("pause-for", r.PauseFor, "must not be negative")
	case r.PauseEvery < 0:
		return Invalid("pause-every", r.PauseEvery, "must not be negative")
	case r.PauseEvery > 0 && r.PauseEvery <= r.PauseFor:
		return Invalid("pause-every", r.PauseEvery, "must be longer than --pause-for, or reading never resumes")
	case r.RcvBuf < 0 || r.RcvBuf > 1<<30:
		return Invalid("rcvbuf", r.RcvBuf, "must be between 0 and 1GiB")
	}
	return nil
}

// Settings converts to the reader's settings.
func (r Reading) Settings() flow.ReadSettings {
	return flow.ReadSettings{
		Size:  int(r.ReadSize),
		Delay: r.ReadDelay,
		Rate:  int64(r.ReadRate),
		Pause: flow.PauseSchedule{After: r.PauseAfter, For: r.PauseFor, Every: r.PauseEvery},
	}
}
