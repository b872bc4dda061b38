package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
	"github.com/go-backpressure/go-backpressure/pkg/report"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// Exit statuses beyond config's.
const exitInterrupted = 130

// run drives the whole run and returns the exit status: 0 when every
// connection completed, 1 when one could not connect or broke, 130 when
// interrupted, and the report printed in every case.
func run(ctx context.Context, cfg clientConfig, stdout, stderr io.Writer) int {
	log := cfg.Logger(stderr)
	target, _ := cfg.target()
	proto := target.Protocol
	dir := cfg.direction()

	reg := metrics.NewRegistry()
	m := metrics.New(reg, config.Version)
	cm := metrics.NewClient(reg)
	m.SetStallThreshold(cfg.StallThreshold)
	rec := report.NewRecorder()
	sampler, err := metrics.NewSocketSampler(reg, metrics.SamplerOptions{Interval: cfg.SampleInterval})
	if err == nil {
		err = metrics.RegisterNetstat(reg)
	}
	if err != nil {
		log.Error("cannot register socket metrics", "err", err)
		return config.ExitFailed
	}
	if sampler.Enabled() {
		rec.SetKernel(kernelView(sampler))
	}
	if missing := sockstat.MissingDescription(); missing != "" {
		log.Info("kernel socket statistics incomplete: their metrics and report lines are left out", "missing", missing)
	}
	samplerCtx, stopSampler := context.WithCancel(context.WithoutCancel(ctx))
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); sampler.Run(samplerCtx) }()
	defer func() { stopSampler(); <-samplerDone }()
	obs := flow.Multi(m, sampler, rec)

	var metricsSrv *http.Server
	if cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			log.Error("cannot serve metrics", "metrics_addr", cfg.MetricsAddr, "err", err)
			return config.ExitFailed
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.Handler(reg))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go metricsSrv.Serve(ln)
		defer metricsSrv.Close()
		log.Info("serving metrics", "addr", ln.Addr().String())
	}

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
	opts := flow.SocketOptions{SendBuffer: int(cfg.SndBuf), ReceiveBuffer: int(cfg.RcvBuf), TLS: cfg.tls()}
	if opts.TLS != nil && opts.TLS.InsecureSkipVerify {
		log.Warn("not verifying the server's TLS certificate (--insecure-skip-verify): anyone in the path can read and change the stream")
	}
	dial := func(ctx context.Context, hello flow.Hello) (flow.Conn, error) {
		return flow.Dial(ctx, target, &hello, opts)
	}

	log.Info("bp-client starting", "run", cfg.RunID, "target", cfg.Target, "direction", dir,
		"connections", cfg.Connections, "payload_size", cfg.PayloadSize, "rate", cfg.Rate,
		"count", cfg.Count, "duration", cfg.Duration)

	// One run, or with --loop one run after another (each with its own
	// report and run id, the metrics served throughout) until interrupted.
	var (
		runErr      error
		interrupted bool
	)
	for round := 1; ; round++ {
		if cfg.Loop {
			hello.RunID = fmt.Sprintf("%s-%d", cfg.RunID, round)
			rec = report.NewRecorder()
			if sampler.Enabled() {
				rec.SetKernel(kernelView(sampler))
			}
			obs = flow.Multi(m, sampler, rec)
			log.Info("run starting", "run", hello.RunID, "round", round)
		}
		start := time.Now()
		// This round's verdict; its observer joins the others (obs is
		// shadowed for the round).
		judge, stopJudge := startVerdict(ctx, cfg, rec)
		obs := flow.Multi(obs, judge)
		stopLive := startLive(cfg, rec, stderr, start)
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			firstErr error
		)
		cr := connRun{dial: dial, hello: hello, plan: plan, obs: obs, log: log, onReconnect: func() {
			rec.Reconnected()
			cm.Reconnected(proto)
		}}
		if cfg.Reconnect {
			cr.retry = reconnectPolicy{max: cfg.ReconnectMax, wait: cfg.ReconnectWait, cap: cfg.ReconnectCap}
		}
		for i := 0; i < cfg.Connections; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := runConn(ctx, cr)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		stopLive()
		stopJudge()

		runErr = firstErr
		interrupted = ctx.Err() != nil
		if interrupted {
			runErr = errors.New("interrupted")
		}
		sum := rec.Summarize(report.Run{
			RunID: hello.RunID, Target: cfg.Target, Direction: dir, Connections: cfg.Connections,
			PayloadSize: int(cfg.PayloadSize), Rate: cfg.Rate, StallThreshold: cfg.StallThreshold,
		}, elapsed, runErr)
		if cfg.Output == "json" {
			sum.WriteJSON(stdout)
		} else {
			sum.WriteText(stdout)
		}
		if runErr != nil && !interrupted {
			log.Error("run failed", "reason", flow.ErrorReason(runErr), "err", runErr,
				"bytes_acked", sum.BytesAcked, "bytes_written", sum.BytesWritten)
		}
		if !cfg.Loop || interrupted {
			break
		}
		select {
		case <-time.After(cfg.LoopPause):
		case <-ctx.Done():
			interrupted = true
		}
		if interrupted {
			break
		}
	}
	if metricsSrv != nil && cfg.Linger > 0 && !interrupted {
		log.Info("lingering so scrapers see the final values", "linger", cfg.Linger)
		select {
		case <-time.After(cfg.Linger):
		case <-ctx.Done():
		}
	}
	switch {
	case interrupted:
		return exitInterrupted
	case runErr != nil:
		return config.ExitFailed
	}
	return config.ExitOK
}

// kernelView adapts the socket sampler's totals to the report's view of one
// run: it starts a new send-queue peak (the recorder counts the times from
// its SetKernel).
func kernelView(s *metrics.SocketSampler) func() report.Kernel {
	s.ResetPeak()
	return func() report.Kernel {
		t := s.Totals()
		return report.Kernel{
			HasPeerWindow:  t.Has&sockstat.FieldPeerWindow != 0,
			PeerWindowZero: t.PeerWindowZero,
			HasLimited:     t.Has&sockstat.FieldLimited != 0,
			RwndLimited:    t.RwndLimited,
			SndbufLimited:  t.SndbufLimited,
			Busy:           t.Busy,
			HasSendQueue:   t.Has&sockstat.FieldSendQueue != 0,
			SendQueue:      int64(t.SendQueue),
			PeakSendQueue:  int64(t.PeakConnSendQueue),
		}
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
