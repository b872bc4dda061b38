package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/term"

	"github.com/go-backpressure/go-backpressure/internal/ratelog"
	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// Exit statuses beyond config's.
const (
	// exitNotDrained: the run's time was up but the path never took (or
	// acknowledged) what was written, within --drain-timeout.
	exitNotDrained  = 3
	exitInterrupted = 130
)

// run drives the whole run and returns the exit status: 0 when every
// connection completed, 1 when one could not connect or broke, 3 when the
// path never drained within --drain-timeout, 130 when interrupted, and the
// report printed in every case.
func run(ctx context.Context, cfg clientConfig, stdout, stderr io.Writer) int {
	log := cfg.Logger(stderr)
	reg := metrics.NewRegistry()
	c, err := newClient(cfg, reg, log, stdout, stderr)
	if err != nil {
		log.Error("cannot register socket metrics", "err", err)
		return config.ExitFailed
	}
	defer c.startSampler(ctx)()
	if cfg.MetricsAddr != "" {
		srv, err := serveMetrics(cfg.MetricsAddr, reg, log)
		switch {
		case err != nil && cfg.metricsDefault:
			// A default the user did not ask for must not end the run
			// (a second client on the same machine): go on without.
			log.Warn("default metrics address taken: going on without /metrics (set --metrics-addr to choose one)", "metrics_addr", cfg.MetricsAddr, "err", err)
			cfg.MetricsAddr = ""
		case err != nil:
			log.Error("cannot serve metrics", "metrics_addr", cfg.MetricsAddr, "err", err)
			return config.ExitFailed
		default:
			defer srv.Close()
		}
	}
	log.Info("bp-client starting", "run", cfg.RunID, "target", cfg.Target, "direction", cfg.direction(),
		"connections", cfg.Connections, "payload_size", cfg.PayloadSize, "rate", cfg.Rate,
		"count", cfg.Count, "duration", cfg.Duration)
	cfg.warnUnplaced(log)
	if cfg.waitStart(ctx, log) {
		return exitInterrupted
	}
	if cfg.inFleet() {
		log.Info("fleet run starting", "fleet", cfg.Fleet, "instance", cfg.Instance, "instances", cfg.Instances,
			"connections", cfg.Connections, "fleet_connections", cfg.fleetConnections,
			"started_at", time.Now().UTC().Format(time.RFC3339Nano))
	}
	runErr, interrupted := c.rounds(ctx)
	if cfg.MetricsAddr != "" && cfg.Linger > 0 && !interrupted {
		log.Info("lingering so scrapers see the final values", "linger", cfg.Linger)
		sleep(ctx, cfg.Linger)
	}
	switch {
	case interrupted:
		return exitInterrupted
	case errors.Is(runErr, flow.ErrDrainTimeout):
		return exitNotDrained
	case runErr != nil:
		return config.ExitFailed
	}
	return config.ExitOK
}

// client is what every round of a run shares: the metrics served
// throughout, the socket sampler, and what each connection dials and does.
type client struct {
	cfg            clientConfig
	log            *slog.Logger
	stdout, stderr io.Writer
	core           *metrics.Metrics
	own            *metrics.Client
	verdictMetrics *metrics.Verdict
	sampler        *sockstat.Sampler
	proto          flow.Protocol
	dial           func(context.Context, flow.Hello) (flow.Conn, error)
	hello          flow.Hello
	plan           flow.Plan
	// connectWarn logs connections that could not be made as they fail,
	// at a bounded rate: 5,000 failing at once are 5 lines and a count.
	connectWarn *ratelog.Logger
	dialing     chan struct{} // --dial-concurrency tokens, for every round
}

// newClient registers the metrics and the socket sampler on reg and
// prepares the connections' dial and plan.
func newClient(cfg clientConfig, reg *prometheus.Registry, log *slog.Logger, stdout, stderr io.Writer) (*client, error) {
	c := &client{cfg: cfg, log: log, stdout: stdout, stderr: stderr,
		core: metrics.New(reg, config.Version), own: metrics.NewClient(reg), connectWarn: ratelog.New(log),
		dialing: make(chan struct{}, cfg.DialConcurrency)}
	c.core.SetStallThreshold(cfg.StallThreshold)
	c.verdictMetrics = metrics.NewVerdict(reg, verdict.Outcomes, cfg.Fleet, cfg.Instances)
	var err error
	c.sampler, err = metrics.NewSocketSampler(reg, metrics.SamplerOptions{Interval: cfg.SampleInterval})
	if err == nil {
		err = metrics.RegisterNetstat(reg)
	}
	if err != nil {
		return nil, err
	}
	if missing := sockstat.MissingDescription(); missing != "" {
		log.Info("kernel socket statistics incomplete: their metrics and report lines are left out", "missing", missing)
	}
	target, _ := cfg.target() // checked by Validate
	c.proto = target.Protocol
	c.dial = dialer(cfg, log)
	c.hello, c.plan = connPlan(cfg)
	return c, nil
}

// startSampler runs the socket sampler until the returned function stops
// it. It outlives ctx, so the last report and the lingering metrics still
// see it.
func (c *client) startSampler(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); c.sampler.Run(ctx) }()
	return func() { cancel(); <-done }
}

// serveMetrics serves /metrics and /healthz on addr until closed.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(reg))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("serving metrics", "addr", ln.Addr().String())
	return srv, nil
}

// dialer returns how each connection reaches the target: the transport,
// its socket options and the hello.
func dialer(cfg clientConfig, log *slog.Logger) func(context.Context, flow.Hello) (flow.Conn, error) {
	target, _ := cfg.target() // checked by Validate
	opts := cfg.socketOptions()
	if opts.TLS != nil && opts.TLS.InsecureSkipVerify {
		log.Warn("not verifying the server's TLS certificate (--insecure-skip-verify): anyone in the path can read and change the stream")
	}
	return func(ctx context.Context, hello flow.Hello) (flow.Conn, error) {
		return flow.Dial(ctx, target, &hello, opts)
	}
}

// socketOptions are the options of every connection's socket.
func (cfg clientConfig) socketOptions() flow.SocketOptions {
	opts := flow.SocketOptions{SendBuffer: int(cfg.SndBuf), ReceiveBuffer: int(cfg.RcvBuf), TLS: cfg.tls()}
	opts.Source = cfg.sourceAddrs() // --source-addrs: each dial takes the next
	return opts
}

// connPlan is what each connection asks of the server (the hello) and does
// itself (the plan).
func connPlan(cfg clientConfig) (flow.Hello, flow.Plan) {
	dir := cfg.direction()
	hello := flow.Hello{
		RunID: cfg.RunID, Direction: dir, PayloadSize: int(cfg.PayloadSize),
		TotalBytes: cfg.totalBytes(), Rate: cfg.Rate, DurationMS: cfg.Duration.Milliseconds(),
	}
	plan := flow.Plan{
		Read:          cfg.Reading.Settings(),
		PeerWrites:    dir.ServerWrites(),
		AckInterval:   cfg.AckInterval,
		Initiator:     true,
		LingerTimeout: cfg.DrainTimeout,
	}
	if dir.ClientWrites() {
		// Generated once, shared by every connection and every write.
		payload := make([]byte, cfg.PayloadSize)
		for i := range payload {
			payload[i] = byte('a' + i%26)
		}
		plan.Write = &flow.WritePlan{
			Payload: payload, Rate: cfg.Rate, TotalBytes: cfg.totalBytes(),
			Duration: cfg.Duration, StallThreshold: cfg.StallThreshold,
		}
	}
	return hello, plan
}

// sleep waits for d or until ctx ends, and reports whether ctx ended.
func sleep(ctx context.Context, d time.Duration) (interrupted bool) {
	select {
	case <-time.After(d):
		return false
	case <-ctx.Done():
		return true
	}
}

// useLive reports whether to draw the live display.
func useLive(cfg clientConfig, w io.Writer) bool {
	switch cfg.Progress {
	case "on":
		return true
	case "off":
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// roundID is the run id of round n: the configured one, or with --loop
// one per round.
func (c *client) roundID(n int) string {
	if !c.cfg.Loop {
		return c.cfg.RunID
	}
	return fmt.Sprintf("%s-%d", c.cfg.RunID, n)
}
