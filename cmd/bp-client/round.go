package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/report"
)

// rounds runs one round, or with --loop one round after another (each
// with its own report and run id, the metrics served throughout) until
// interrupted. It returns the last round's error and whether the run was
// interrupted.
func (c *client) rounds(ctx context.Context) (runErr error, interrupted bool) {
	for n := 1; ; n++ {
		runErr = c.round(ctx, n)
		if ctx.Err() != nil {
			return runErr, true
		}
		if !c.cfg.Loop {
			return runErr, false
		}
		if sleep(ctx, c.cfg.LoopPause) {
			return runErr, true
		}
	}
}

// round runs round n's connections to their end and prints its report.
func (c *client) round(ctx context.Context, n int) error {
	hello := c.hello
	hello.RunID = c.roundID(n)
	if c.cfg.Loop {
		c.log.Info("run starting", "run", hello.RunID, "round", n)
	}
	rec := c.recorder()
	start := time.Now()
	judge, stopJudge := startVerdict(ctx, c.cfg, rec, c.sampler)
	stopLive := startLive(c.cfg, rec, c.stderr, start)
	stopVerdictMetrics := c.startVerdictMetrics(judge)
	stopTimeline := rec.KeepTimeline(start)
	runErr := c.runConns(ctx, c.connRun(hello, c.observers(rec, judge), rec))
	elapsed := time.Since(start)
	stopVerdictMetrics()
	stopLive()
	stopJudge()
	stopTimeline()

	if ctx.Err() != nil {
		runErr = errors.New("interrupted")
	}
	c.writeReport(rec, hello.RunID, start, elapsed, runErr, ctx.Err() != nil)
	return runErr
}

// recorder is a new round's account, reading the kernel's view from the
// socket sampler when it samples, and the stream layer's when the target
// carries streams.
func (c *client) recorder() *report.Recorder {
	rec := report.NewRecorder()
	if c.sampler.Enabled() {
		rec.SetKernel(c.sampler)
	}
	if c.sampler.StreamsEnabled() && c.cfg.multiplexed() {
		rec.SetStreams(c.sampler)
	}
	return rec
}

// observers is what watches a round's connections: the metrics, the
// socket sampler, the round's report and its verdict. The sampler comes
// before the verdict, which reads its samples.
func (c *client) observers(rec *report.Recorder, judge flow.Observer) flow.Observer {
	return flow.Multi(c.core, c.sampler, rec, judge)
}

// connRun is what each of a round's connections needs.
func (c *client) connRun(hello flow.Hello, obs flow.Observer, rec *report.Recorder) connRun {
	cr := connRun{dial: c.dial, dialing: c.dialing, hello: hello, plan: c.plan, obs: obs, log: c.log, onReconnect: func() {
		rec.Reconnected()
		c.own.Reconnected(c.proto)
	}, onNoConnect: func(err error) {
		rec.NotConnected()
		c.core.Refused(c.proto, err)
		c.connectWarn.Warn(flow.ErrorReason(err), "connection could not be made", "err", err)
	}}
	if c.cfg.Reconnect {
		cr.retry = reconnectPolicy{max: c.cfg.ReconnectMax, wait: c.cfg.ReconnectWait, cap: c.cfg.ReconnectCap}
	}
	return cr
}

// runConns runs the round's connections side by side and returns the
// first error.
func (c *client) runConns(ctx context.Context, cr connRun) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	record := func(err error) {
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
	}
	multiplexed := c.cfg.multiplexed()
	for range c.cfg.Connections {
		wg.Go(func() {
			if multiplexed {
				c.runStreams(ctx, cr, record)
				return
			}
			record(runConn(ctx, &cr))
		})
	}
	wg.Wait()
	return firstErr
}

// writeReport prints the round's report, and logs why it failed unless it
// was interrupted.
func (c *client) writeReport(rec *report.Recorder, runID string, start time.Time, elapsed time.Duration, runErr error, interrupted bool) {
	cfg := c.cfg
	run := report.Run{
		RunID: runID, Target: cfg.Target, Direction: cfg.direction(), Connections: cfg.Connections,
		PayloadSize: int(cfg.PayloadSize), Rate: cfg.Rate, StallThreshold: cfg.StallThreshold,
		Fleet: cfg.fleetReport(), Start: start,
	}
	if cfg.multiplexed() {
		run.Streams = cfg.Streams // each stream is a run of its own
		run.SlowStreams = cfg.SlowStreams
	}
	sum := rec.Summarize(run, elapsed, runErr)
	c.verdictMetrics.Set(verdictFigures(sum.Verdict))
	if cfg.Output == "json" {
		sum.WriteJSON(c.stdout)
	} else {
		sum.WriteText(c.stdout)
	}
	c.writeHTML(sum)
	if runErr != nil && !interrupted {
		c.log.Error("run failed", "reason", flow.ErrorReason(runErr), "err", runErr,
			"bytes_acked", sum.BytesAcked, "bytes_written", sum.BytesWritten)
	}
}
