package main

import (
	"os"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

type socketsConfig struct {
	config.Common
	MetricsAddr     string        `envconfig:"METRICS_ADDR" flag:"metrics-addr" default:":9102" desc:"listener for /metrics and /healthz"`
	DownstreamPorts string        `envconfig:"DOWNSTREAM_PORTS" flag:"downstream-ports" default:"" desc:"comma-separated ports where the hop listens for clients: a socket with one of them as its local port is the hop's downstream side"`
	UpstreamPorts   string        `envconfig:"UPSTREAM_PORTS" flag:"upstream-ports" default:"" desc:"comma-separated ports the hop connects to: a socket with one of them as its remote port is the hop's upstream side"`
	SampleInterval  time.Duration `envconfig:"SAMPLE_INTERVAL" flag:"sample-interval" default:"100ms" desc:"how often to read every TCP socket of the network namespace (one sock_diag dump per address family)"`
}

const summary = "bp-sockets: the kernel's view of a hop's TCP sockets (queues, windows, flow-control time), by side, from sock_diag, as Prometheus metrics."

func loadConfig(args []string) (socketsConfig, error) {
	var cfg socketsConfig
	if _, err := config.Load("bp-sockets", summary, &cfg, args, os.Stdout); err != nil {
		return cfg, err
	}
	if cfg.Version {
		return cfg, nil
	}
	return cfg, cfg.Validate()
}

func (c socketsConfig) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	ports, err := c.ports()
	if err != nil {
		return err
	}
	switch {
	case len(ports.Downstream) == 0 && len(ports.Upstream) == 0:
		return config.Invalid("downstream-ports", c.DownstreamPorts, "give the hop's ports: --downstream-ports, --upstream-ports or both (e.g. --downstream-ports 8091 --upstream-ports 8080)")
	case c.MetricsAddr == "":
		return config.Invalid("metrics-addr", c.MetricsAddr, "must not be empty")
	case c.SampleInterval < time.Millisecond:
		return config.Invalid("sample-interval", c.SampleInterval, "must be at least 1ms")
	}
	return nil
}

// ports parses the two port lists.
func (c socketsConfig) ports() (sockstat.HopPorts, error) {
	var p sockstat.HopPorts
	var err error
	if p.Downstream, err = sockstat.ParsePorts(c.DownstreamPorts); err != nil {
		return p, config.Invalid("downstream-ports", c.DownstreamPorts, err.Error())
	}
	if p.Upstream, err = sockstat.ParsePorts(c.UpstreamPorts); err != nil {
		return p, config.Invalid("upstream-ports", c.UpstreamPorts, err.Error())
	}
	return p, nil
}
