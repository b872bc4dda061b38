package main

import (
	"context"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/report"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// startVerdict starts judging one run (pkg/verdict): it returns the
// observer to add to the run's observers, and the function that stops its
// passes once the run is over. The recorder reports the verdict, at the
// end and live; the verdict reads the kernel's view of each connection
// from the sampler. A client that only reads has no verdict.
func startVerdict(ctx context.Context, cfg clientConfig, rec *report.Recorder, sampler *sockstat.Sampler) (flow.Observer, func()) {
	if !cfg.direction().ClientWrites() {
		return flow.Nop{}, func() {}
	}
	opts := verdict.Options{StallThreshold: cfg.StallThreshold, Interval: cfg.SampleInterval}
	switch {
	case sampler.Enabled():
		opts.Kernel = sampler
	case cfg.SampleInterval == 0:
		opts.KernelReason = "socket sampling is off (--sample-interval 0)"
	case !sockstat.Supported():
		opts.KernelReason = "not supported on this system"
	}
	v := verdict.New(opts)
	rec.SetVerdict(v)
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); v.Run(ctx) }()
	return v, func() { cancel(); <-done }
}
