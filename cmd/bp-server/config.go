package main

import (
	"os"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/procs"
	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

type serverConfig struct {
	config.Common
	HTTPAddr string `envconfig:"HTTP_ADDR" flag:"http-addr" default:":8080" desc:"HTTP listener for /ws, /h2 (HTTP/2 streams: h2c, or h2 by ALPN with TLS), /client, /metrics, /healthz; PORT, when set, wins over BP_HTTP_ADDR and the default"`
	TCPAddr  string `envconfig:"TCP_ADDR" flag:"tcp-addr" default:":8081" desc:"raw TCP sink listener (empty: off)"`
	GRPCAddr string `envconfig:"GRPC_ADDR" flag:"grpc-addr" default:":8082" desc:"gRPC listener, the Backpressure service (proto/backpressure/v1): h2c, or TLS with --tls-cert and --tls-key; each stream a run (empty: off)"`
	config.Reading
	config.Limits
	config.TLSServe
	SndBuf         config.Size   `envconfig:"SNDBUF" flag:"sndbuf" default:"0" desc:"SO_SNDBUF for download writes (0: kernel default)"`
	StallThreshold time.Duration `envconfig:"STALL_THRESHOLD" flag:"stall-threshold" default:"100ms" desc:"a download write blocked this long counts as a stall"`
	AckInterval    time.Duration `envconfig:"ACK_INTERVAL" flag:"ack-interval" default:"100ms" desc:"how often to tell the writer how many bytes were read"`
	LogInterval    time.Duration `envconfig:"LOG_INTERVAL" flag:"log-interval" default:"5s" desc:"how often to log each connection's progress (0: only open and close)"`
	HelloTimeout   time.Duration `envconfig:"HELLO_TIMEOUT" flag:"hello-timeout" default:"5s" desc:"how long to wait for a client's first bytes before treating it as hello-less"`
	IdleTimeout    time.Duration `envconfig:"IDLE_TIMEOUT" flag:"idle-timeout" default:"5m" desc:"end a connection on which no byte moved either way this long while this side waited for the peer; scheduled pauses, read delays and rates, and writes blocked by backpressure never count (0: off)"`
	PayloadMemory  config.Size   `envconfig:"PAYLOAD_MEMORY" flag:"payload-memory" default:"32MiB" desc:"bound on the memory of download payload buffers together; runs share one buffer per size class (a power of two from 64KiB), and a download whose buffer would not fit is refused (reason payload_memory, WebSocket close 1013); the default holds every class at once"`
	SampleInterval time.Duration `envconfig:"SAMPLE_INTERVAL" flag:"sample-interval" default:"100ms" desc:"how often to read the kernel's socket statistics (windows, queues) of every connection (0: off)"`

	// procs, set by main only, fits GOMAXPROCS to the connections.
	procs *procs.Fitter
}

const summary = "bp-server: a slow reader (and writer) for measuring TCP backpressure over TCP, WebSocket and gRPC."

// loadConfig reads flags over environment over defaults, then PORT.
func loadConfig(args []string) (serverConfig, error) {
	var cfg serverConfig
	loaded, err := config.Load("bp-server", summary, &cfg, args, os.Stdout)
	if err != nil {
		return cfg, err
	}
	cfg.Limits.NoteDefaults(loaded)
	if port := os.Getenv("PORT"); port != "" && !loaded.Set("http-addr") {
		cfg.HTTPAddr = ":" + port
	}
	return cfg, cfg.Validate()
}

func (c serverConfig) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	if err := c.Reading.Validate(); err != nil {
		return err
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	if err := c.TLSServe.Validate(); err != nil {
		return err
	}
	switch {
	case c.HTTPAddr == "":
		return config.Invalid("http-addr", c.HTTPAddr, "must not be empty")
	case c.SndBuf < 0 || c.SndBuf > 1<<30:
		return config.Invalid("sndbuf", c.SndBuf, "must be between 0 and 1GiB")
	case c.StallThreshold <= 0:
		return config.Invalid("stall-threshold", c.StallThreshold, "must be positive")
	case c.AckInterval < time.Millisecond:
		return config.Invalid("ack-interval", c.AckInterval, "must be at least 1ms")
	case c.LogInterval < 0:
		return config.Invalid("log-interval", c.LogInterval, "must not be negative")
	case c.HelloTimeout <= 0:
		return config.Invalid("hello-timeout", c.HelloTimeout, "must be positive")
	case c.IdleTimeout < 0:
		return config.Invalid("idle-timeout", c.IdleTimeout, "must not be negative (0: off)")
	case c.PayloadMemory < 64<<10:
		return config.Invalid("payload-memory", c.PayloadMemory, "must be at least 64KiB (one payload buffer of the smallest class)")
	case c.SampleInterval < 0 || (c.SampleInterval > 0 && c.SampleInterval < time.Millisecond):
		return config.Invalid("sample-interval", c.SampleInterval, "must be 0 (off) or at least 1ms")
	}
	return nil
}

func (c serverConfig) socketOptions() flow.SocketOptions {
	return flow.SocketOptions{SendBuffer: int(c.SndBuf), ReceiveBuffer: int(c.RcvBuf)}
}
