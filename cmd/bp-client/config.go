package main

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"os"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

type clientConfig struct {
	config.Common
	config.TLSDial
	// FleetSettings: --instance, --instances, --fleet, --start-at (fleet.go).
	FleetSettings
	Target         string        `envconfig:"TARGET" flag:"target" default:"tcp://127.0.0.1:8081" desc:"where to connect: tcp://host:port, tls://host:port, ws://host:port/ws, wss://host:port/ws, grpc://host:port, grpcs://host:port, h2c://host:port/h2 or https://host:port/h2 (the last four: streams on HTTP/2, see --streams)"`
	Direction      string        `envconfig:"DIRECTION" flag:"direction" default:"up" desc:"up: this client writes; down: the server writes and this client reads; both"`
	PayloadSize    config.Size   `envconfig:"PAYLOAD_SIZE" flag:"payload-size" default:"128KiB" desc:"bytes per write call (one WebSocket message, one TCP frame, one gRPC message, one frame on an HTTP/2 stream)"`
	Rate           float64       `envconfig:"RATE" flag:"rate" default:"0" desc:"messages per second per connection (0: as fast as the path allows); a turn missed, to a blocked write or a late wake-up, is not made up (beyond 1 ms of turns, above 909 a second)"`
	Count          int64         `envconfig:"COUNT" flag:"count" default:"0" desc:"messages per connection (0: bounded by --duration)"`
	Duration       time.Duration `envconfig:"DURATION" flag:"duration" default:"10s" desc:"how long each connection writes (0: bounded by --count)"`
	Connections    int           `envconfig:"CONNECTIONS" flag:"connections" default:"1" desc:"parallel connections"`
	Streams        int           `envconfig:"STREAMS" flag:"streams" default:"1" desc:"streams per connection, 1 to 1000, for grpc://, grpcs://, h2c:// and https:// targets (each stream is a run of its own on the shared connection)"`
	SlowStreams    int           `envconfig:"SLOW_STREAMS" flag:"slow-streams" default:"-1" desc:"with --streams N, how many of each connection's streams the server reads slowly (its read settings); the others it reads at full speed (-1: all slow)"`
	SndBuf         config.Size   `envconfig:"SNDBUF" flag:"sndbuf" default:"0" desc:"SO_SNDBUF (0: kernel default); the kernel doubles it"`
	StallThreshold time.Duration `envconfig:"STALL_THRESHOLD" flag:"stall-threshold" default:"100ms" desc:"a write call blocked this long counts as a stall"`
	config.Reading
	AckInterval    time.Duration `envconfig:"ACK_INTERVAL" flag:"ack-interval" default:"100ms" desc:"how often to ack bytes read (down and both)"`
	DrainTimeout   time.Duration `envconfig:"DRAIN_TIMEOUT" flag:"drain-timeout" default:"30s" desc:"after writing (or when --duration is up with a write still blocked), how long the path may take to take and acknowledge everything; then the run ends with exit status 3, the report saying how many bytes were stuck"`
	RunID          string        `envconfig:"RUN_ID" flag:"run-id" default:"" desc:"run id sent in the hello (default: random)"`
	Output         string        `envconfig:"OUTPUT" flag:"output" default:"text" desc:"report format: text or json"`
	ReportHTML     string        `envconfig:"REPORT_HTML" flag:"report-html" default:"" desc:"also write the report as one self-contained HTML page to this file: the run's timeline drawn, the verdict in words (with --loop, each run overwrites it)"`
	Progress       string        `envconfig:"PROGRESS" flag:"progress" default:"auto" desc:"live display: auto (when stderr is a terminal), on or off"`
	MetricsAddr    string        `envconfig:"METRICS_ADDR" flag:"metrics-addr" default:"127.0.0.1:9101" desc:"listener for /metrics and /healthz (empty: off); PORT, when set, wins over BP_METRICS_ADDR and the default (then on all interfaces); the default, when taken (a second client), is skipped with a warning"`
	Linger         time.Duration `envconfig:"LINGER" flag:"linger" default:"0s" desc:"keep serving /metrics this long after the run, so a scraper sees the final values"`
	SampleInterval time.Duration `envconfig:"SAMPLE_INTERVAL" flag:"sample-interval" default:"100ms" desc:"how often to read the kernel's socket statistics (windows, queues) of every connection (0: off)"`
	Loop           bool          `envconfig:"LOOP" flag:"loop" default:"false" desc:"repeat the run until interrupted, --loop-pause apart, a report per run and the metrics served throughout (for dashboards)"`
	LoopPause      time.Duration `envconfig:"LOOP_PAUSE" flag:"loop-pause" default:"5s" desc:"with --loop, how long to wait between runs"`
	Reconnect      bool          `envconfig:"RECONNECT" flag:"reconnect" default:"false" desc:"when a connection breaks or cannot be made, connect again (with backoff) and go on with the rest of its run: what was not acknowledged is written again"`
	ReconnectMax   int           `envconfig:"RECONNECT_MAX" flag:"reconnect-max" default:"10" desc:"with --reconnect, attempts per connection before the run fails"`
	ReconnectWait  time.Duration `envconfig:"RECONNECT_BACKOFF" flag:"reconnect-backoff" default:"200ms" desc:"with --reconnect, the wait before the first attempt; it doubles with each attempt, with jitter, up to --reconnect-backoff-max"`
	ReconnectCap   time.Duration `envconfig:"RECONNECT_BACKOFF_MAX" flag:"reconnect-backoff-max" default:"5s" desc:"with --reconnect, the longest wait between two attempts"`
	// SourceAddrs: local addresses for the connections (issue 16).
	// DialConcurrency bounds the connection attempts in flight.
	DialConcurrency int    `envconfig:"DIAL_CONCURRENCY" flag:"dial-concurrency" default:"256" desc:"connection attempts in flight at once (connect, TLS and WebSocket handshakes, hello); the others wait their turn, so many connections open at the pace the target accepts them instead of all at once"`
	SourceAddrs     string `envconfig:"SOURCE_ADDRS" flag:"source-addrs" default:"" desc:"local addresses to bind the connections to, round-robin: a comma-separated list of addresses and first-last ranges, e.g. 127.0.0.2-127.0.0.9 (empty: the kernel picks); one address allows about 28,000 connections to one server port"`

	// metricsDefault: MetricsAddr is the default, which the user did not
	// ask for: when it is taken, the run goes on without metrics rather
	// than end without a report.
	metricsDefault bool
}

const summary = "bp-client: pushes data through a path to bp-server and measures how long its writes are held back."

func loadConfig(args []string) (clientConfig, error) {
	var cfg clientConfig
	loaded, err := config.Load("bp-client", summary, &cfg, args, os.Stdout)
	if err != nil {
		return cfg, err
	}
	chosen := loaded.Set("metrics-addr") || os.Getenv(config.EnvName("metrics-addr")) != ""
	if port := os.Getenv("PORT"); port != "" && !loaded.Set("metrics-addr") {
		// A platform's port (Cloud Foundry, containers): on every
		// interface, and the platform expects it served.
		cfg.MetricsAddr, chosen = ":"+port, true
	}
	cfg.metricsDefault = !chosen
	if cfg.RunID == "" {
		var b [6]byte
		rand.Read(b[:])
		cfg.RunID = hex.EncodeToString(b[:])
	}
	// The fleet: the scheduler's index, then this instance's share of
	// the fleet's connections once every setting is checked.
	if err := cfg.FleetSettings.resolve(fleetEnv); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	cfg.fleetConnections, cfg.Connections = cfg.Connections, cfg.share(cfg.Connections)
	return cfg, nil
}

func (c clientConfig) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	if _, err := c.target(); err != nil {
		return err
	}
	if err := c.TLSDial.Validate(); err != nil {
		return err
	}
	if _, err := flow.ParseDirection(c.Direction); err != nil || c.Direction == "" {
		return config.Invalid("direction", c.Direction, "want up, down or both")
	}
	if err := c.Reading.Validate(); err != nil {
		return err
	}
	if err := c.FleetSettings.validate(c.Connections, c.fleetRunLength(), time.Now()); err != nil {
		return err
	}
	switch {
	case c.PayloadSize < 1 || c.PayloadSize > flow.MaxPayloadSize:
		return config.Invalid("payload-size", c.PayloadSize, "must be between 1 byte and 16MiB")
	case c.Rate < 0:
		return config.Invalid("rate", c.Rate, "must not be negative")
	case c.Count < 0:
		return config.Invalid("count", c.Count, "must not be negative")
	case c.Duration < 0:
		return config.Invalid("duration", c.Duration, "must not be negative")
	case c.Count == 0 && c.Duration == 0:
		return config.Invalid("duration", c.Duration, "--count and --duration are both 0: the run would never end")
	case c.Connections < 1 || c.Connections > 100000:
		return config.Invalid("connections", c.Connections, "must be between 1 and 100000")
	case c.Streams < 1 || c.Streams > 1000:
		return config.Invalid("streams", c.Streams, "must be between 1 and 1000")
	case c.Streams > 1 && !c.multiplexed():
		return config.Invalid("streams", c.Streams, "only grpc://, grpcs://, h2c:// and https:// targets carry streams")
	case c.Connections*c.Streams > 100000:
		return config.Invalid("streams", c.Streams, "--connections × --streams must be at most 100000")
	case c.SlowStreams < -1 || c.SlowStreams > c.Streams:
		return config.Invalid("slow-streams", c.SlowStreams, "must be between 0 and --streams, or -1 (all)")
	case c.SlowStreams >= 0 && !c.multiplexed():
		return config.Invalid("slow-streams", c.SlowStreams, "only grpc://, grpcs://, h2c:// and https:// targets carry streams")
	case c.SndBuf < 0 || c.SndBuf > 1<<30:
		return config.Invalid("sndbuf", c.SndBuf, "must be between 0 and 1GiB")
	case c.StallThreshold <= 0:
		return config.Invalid("stall-threshold", c.StallThreshold, "must be positive")
	case c.AckInterval < time.Millisecond:
		return config.Invalid("ack-interval", c.AckInterval, "must be at least 1ms")
	case c.DrainTimeout <= 0:
		return config.Invalid("drain-timeout", c.DrainTimeout, "must be positive")
	case len(c.RunID) > 64:
		return config.Invalid("run-id", c.RunID, "must be at most 64 bytes")
	case c.Output != "text" && c.Output != "json":
		return config.Invalid("output", c.Output, "want text or json")
	case c.Progress != "auto" && c.Progress != "on" && c.Progress != "off":
		return config.Invalid("progress", c.Progress, "want auto, on or off")
	case c.Linger < 0:
		return config.Invalid("linger", c.Linger, "must not be negative")
	case c.SampleInterval < 0 || (c.SampleInterval > 0 && c.SampleInterval < time.Millisecond):
		return config.Invalid("sample-interval", c.SampleInterval, "must be 0 (off) or at least 1ms")
	case c.LoopPause < 0:
		return config.Invalid("loop-pause", c.LoopPause, "must not be negative")
	case c.ReconnectMax < 1 || c.ReconnectMax > 1000:
		return config.Invalid("reconnect-max", c.ReconnectMax, "must be between 1 and 1000")
	case c.ReconnectWait <= 0:
		return config.Invalid("reconnect-backoff", c.ReconnectWait, "must be positive")
	case c.DialConcurrency < 1 || c.DialConcurrency > 100000:
		return config.Invalid("dial-concurrency", c.DialConcurrency, "must be between 1 and 100000")
	case c.ReconnectCap < c.ReconnectWait:
		return config.Invalid("reconnect-backoff-max", c.ReconnectCap, "must be at least --reconnect-backoff "+c.ReconnectWait.String())
	}
	if _, err := flow.ParseSourceAddrs(c.SourceAddrs); err != nil {
		return config.Invalid("source-addrs", c.SourceAddrs, err.Error())
	}
	return nil
}

// multiplexed reports whether the target carries streams (gRPC, HTTP/2).
func (c clientConfig) multiplexed() bool {
	t, err := c.target()
	return err == nil && t.Multiplexed()
}

// sourceAddrs are the parsed --source-addrs (nil: none; checked by Validate).
func (c clientConfig) sourceAddrs() *flow.SourceAddrs {
	sa, _ := flow.ParseSourceAddrs(c.SourceAddrs)
	return sa
}

// target parses --target into the target to dial.
func (c clientConfig) target() (flow.Target, error) {
	t, err := flow.ParseTarget(c.Target)
	var te flow.TargetError
	switch {
	case err == nil:
		return t, nil
	case errors.As(err, &te) && te.NotURL:
		return t, config.Invalid("target", c.Target, "not a URL (want tcp://host:port, ws://host:port/ws, wss://host:port/ws, grpc://host:port or h2c://host:port/h2)")
	case errors.As(err, &te) && te.Want == "":
		return t, config.Invalid("target", c.Target, "unknown scheme "+`"`+te.Scheme+`"`+" (want tcp, tls, ws, wss, grpc, grpcs, h2c or https)")
	}
	return t, config.Invalid("target", c.Target, err.Error())
}

// tls is the TLS configuration for a tls:// or wss:// target, nil for the
// others.
func (c clientConfig) tls() *tls.Config {
	if t, err := c.target(); err != nil || !t.TLS {
		return nil
	}
	cfg, _ := c.TLSDial.ClientConfig() // checked by Validate
	return cfg
}

// busy is how many goroutines of this client move payload at once: one
// per stream of every connection, two for both directions (the writer
// and the reader), the processors it needs (package procs).
func (c clientConfig) busy() int {
	n := c.Connections * c.Streams
	if c.direction() == flow.Both {
		n *= 2
	}
	return n
}

func (c clientConfig) direction() flow.Direction {
	d, _ := flow.ParseDirection(c.Direction)
	return d
}

// fleetRunLength is how long the run lasts, for judging a late --start-at:
// --duration, or 0 (unknown) for a run bounded by --count or looping.
func (c clientConfig) fleetRunLength() time.Duration {
	if c.Loop || c.Count > 0 {
		return 0
	}
	return c.Duration
}

// totalBytes per connection: --count messages of --payload-size.
func (c clientConfig) totalBytes() int64 { return c.Count * int64(c.PayloadSize) }
