package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/relay"
)

type relayConfig struct {
	config.Common
	config.TLSServe
	config.TLSDial
	config.Limits
	HTTPAddr       string        `envconfig:"HTTP_ADDR" flag:"http-addr" default:":8090" desc:"downstream HTTP listener for /ws, /metrics, /healthz; PORT, when set, wins over BP_HTTP_ADDR and the default"`
	TCPAddr        string        `envconfig:"TCP_ADDR" flag:"tcp-addr" default:":8091" desc:"downstream raw TCP listener (empty: off)"`
	Upstream       string        `envconfig:"UPSTREAM" flag:"upstream" default:"" desc:"where to forward: tcp://host:port, tls://host:port, ws://host:port/ws or wss://host:port/ws (required)"`
	Buffer         config.Size   `envconfig:"BUFFER" flag:"buffer" default:"0" desc:"bytes each connection may hold per direction (0: stream, a fixed 64KiB that stops reading as soon as upstream blocks)"`
	BufferMax      config.Size   `envconfig:"BUFFER_MAX" flag:"buffer-max" default:"1GiB" desc:"hard cap on the bytes all connections' buffers hold together"`
	Name           string        `envconfig:"NAME" flag:"name" default:"" desc:"this hop's name in the hello's via list (default: hostname:port of the listener that accepted)"`
	MetricsAddr    string        `envconfig:"METRICS_ADDR" flag:"metrics-addr" default:"" desc:"listener for /metrics and /healthz (empty: on the HTTP listener)"`
	DownRcvBuf     config.Size   `envconfig:"DOWNSTREAM_RCVBUF" flag:"downstream-rcvbuf" default:"0" desc:"SO_RCVBUF of downstream connections (0: kernel default); the kernel doubles it"`
	DownSndBuf     config.Size   `envconfig:"DOWNSTREAM_SNDBUF" flag:"downstream-sndbuf" default:"0" desc:"SO_SNDBUF of downstream connections (0: kernel default)"`
	UpRcvBuf       config.Size   `envconfig:"UPSTREAM_RCVBUF" flag:"upstream-rcvbuf" default:"0" desc:"SO_RCVBUF of upstream connections (0: kernel default)"`
	UpSndBuf       config.Size   `envconfig:"UPSTREAM_SNDBUF" flag:"upstream-sndbuf" default:"0" desc:"SO_SNDBUF of upstream connections (0: kernel default)"`
	UpLowat        config.Size   `envconfig:"UPSTREAM_NOTSENT_LOWAT" flag:"upstream-notsent-lowat" default:"32KiB" desc:"TCP_NOTSENT_LOWAT of upstream connections: unsent bytes the kernel holds before a write waits, so the upstream reader gets bytes while they are fresh in cache (0: the kernel default, unlimited; 32KiB made a stream relay 1.26x as fast on a loaded 2-core machine, see docs/BENCHMARKS.md)"`
	StallThreshold time.Duration `envconfig:"STALL_THRESHOLD" flag:"stall-threshold" default:"100ms" desc:"a write blocked this long counts as a stall"`
	HelloTimeout   time.Duration `envconfig:"HELLO_TIMEOUT" flag:"hello-timeout" default:"5s" desc:"how long to wait for a downstream peer's first bytes before relaying it raw"`
	DialTimeout    time.Duration `envconfig:"DIAL_TIMEOUT" flag:"dial-timeout" default:"10s" desc:"how long dialling upstream may take"`
	LingerTimeout  time.Duration `envconfig:"LINGER_TIMEOUT" flag:"linger-timeout" default:"30s" desc:"once one side has finished, how long to wait for the last fins and acks"`
	SampleInterval time.Duration `envconfig:"SAMPLE_INTERVAL" flag:"sample-interval" default:"100ms" desc:"how often to read the kernel's socket statistics of every connection (0: off)"`
}

const summary = "bp-relay: an instrumented hop with a buffer of your choice, between bp-client and bp-server (or anything speaking TCP or WebSocket)."

func loadConfig(args []string) (relayConfig, error) {
	var cfg relayConfig
	loaded, err := config.Load("bp-relay", summary, &cfg, args, os.Stdout)
	if err != nil {
		return cfg, err
	}
	cfg.Limits.NoteDefaults(loaded)
	if port := os.Getenv("PORT"); port != "" && !loaded.Set("http-addr") {
		cfg.HTTPAddr = ":" + port
	}
	if cfg.Version {
		return cfg, nil // --version needs no upstream
	}
	return cfg, cfg.Validate()
}

func (c relayConfig) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	if _, err := c.upstream(); err != nil {
		return err
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	if err := c.TLSServe.Validate(); err != nil {
		return err
	}
	if err := c.TLSDial.Validate(); err != nil {
		return err
	}
	bufSize := func(name string, v config.Size) error {
		if v < 0 || v > 1<<30 {
			return config.Invalid(name, v, "must be between 0 and 1GiB")
		}
		return nil
	}
	for _, b := range []struct {
		name string
		v    config.Size
	}{{"downstream-rcvbuf", c.DownRcvBuf}, {"downstream-sndbuf", c.DownSndBuf}, {"upstream-rcvbuf", c.UpRcvBuf}, {"upstream-sndbuf", c.UpSndBuf}, {"upstream-notsent-lowat", c.UpLowat}} {
		if err := bufSize(b.name, b.v); err != nil {
			return err
		}
	}
	switch {
	case c.HTTPAddr == "":
		return config.Invalid("http-addr", c.HTTPAddr, "must not be empty")
	case c.BufferMax < relay.StreamBufferSize:
		return config.Invalid("buffer-max", c.BufferMax, "must be at least 64KiB")
	case c.Buffer < 0:
		return config.Invalid("buffer", c.Buffer, "must not be negative (0: stream)")
	case c.Buffer > c.BufferMax:
		return config.Invalid("buffer", c.Buffer, "exceeds --buffer-max "+c.BufferMax.String()+"; raise --buffer-max to allow it")
	case len(c.Name) > 128:
		return config.Invalid("name", c.Name, "must be at most 128 bytes")
	case c.StallThreshold <= 0:
		return config.Invalid("stall-threshold", c.StallThreshold, "must be positive")
	case c.HelloTimeout <= 0:
		return config.Invalid("hello-timeout", c.HelloTimeout, "must be positive")
	case c.DialTimeout <= 0:
		return config.Invalid("dial-timeout", c.DialTimeout, "must be positive")
	case c.LingerTimeout <= 0:
		return config.Invalid("linger-timeout", c.LingerTimeout, "must be positive")
	case c.SampleInterval < 0 || (c.SampleInterval > 0 && c.SampleInterval < time.Millisecond):
		return config.Invalid("sample-interval", c.SampleInterval, "must be 0 (off) or at least 1ms")
	}
	return nil
}

// upstream parses --upstream into the target to dial.
func (c relayConfig) upstream() (flow.Target, error) {
	const want = "want tcp://host:port, tls://host:port, ws://host:port/ws or wss://host:port/ws"
	if c.Upstream == "" {
		return flow.Target{}, config.Invalid("upstream", c.Upstream, "is required: "+want)
	}
	t, err := flow.ParseTarget(c.Upstream)
	var te flow.TargetError
	switch {
	case err == nil:
		return t, nil
	case errors.As(err, &te) && te.NotURL:
		return t, config.Invalid("upstream", c.Upstream, "not a URL ("+want+")")
	case errors.As(err, &te) && te.Want == "":
		return t, config.Invalid("upstream", c.Upstream, `unknown scheme "`+te.Scheme+`" (`+want+")")
	}
	return t, config.Invalid("upstream", c.Upstream, err.Error())
}

// dialer connects upstream: with the forwarded hello, or raw when the
// downstream peer sent none.
func (c relayConfig) dialer() relay.Dialer {
	target, _ := c.upstream()
	opts := flow.SocketOptions{SendBuffer: int(c.UpSndBuf), ReceiveBuffer: int(c.UpRcvBuf), NotSentLowat: int(c.UpLowat)}
	if target.TLS {
		opts.TLS, _ = c.TLSDial.ClientConfig() // checked by Validate
	}
	return func(ctx context.Context, h *flow.Hello) (flow.Conn, error) {
		return flow.Dial(ctx, target, h, opts)
	}
}

func (c relayConfig) downstreamOptions() flow.SocketOptions {
	return flow.SocketOptions{SendBuffer: int(c.DownSndBuf), ReceiveBuffer: int(c.DownRcvBuf)}
}

// bufferSize is the per-connection buffer in force.
// fdsPerConnection is the file descriptors one relayed connection may
// hold: its two sockets and, in stream mode (a buffer under two reads),
// a splice pipe of two descriptors per direction (pkg/relay/splice.go).
func (c relayConfig) fdsPerConnection() int {
	if c.bufferSize() < 2*flow.DefaultReadSize {
		return 6
	}
	return 2
}

func (c relayConfig) bufferSize() int {
	if c.Buffer == 0 {
		return relay.StreamBufferSize
	}
	return int(c.Buffer)
}
