package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/report"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// kernelLive describes the kernel's view over the last refresh: the share
// of the connections' time the server's window was zero and the share the
// kernel was held back by it, and the bytes in the send queues now. connTime
// is the refresh interval times the open connections, in seconds. Nothing is
// shown for what the kernel does not report.
func kernelLive(cur, last *sockstat.Totals, connTime float64) string {
	if cur == nil || last == nil || connTime <= 0 {
		return ""
	}
	share := func(now, before time.Duration) float64 {
		return 100 * min(max((now-before).Seconds()/connTime, 0), 1)
	}
	var b strings.Builder
	if cur.Has&sockstat.FieldPeerWindow != 0 {
		fmt.Fprintf(&b, "  win0 %3.0f%%", share(cur.PeerWindowZero, last.PeerWindowZero))
	}
	if cur.Has&sockstat.FieldLimited != 0 {
		fmt.Fprintf(&b, "  rwnd-limited %3.0f%%", share(cur.RwndLimited, last.RwndLimited))
	}
	if cur.Has&sockstat.FieldSendQueue != 0 {
		fmt.Fprintf(&b, "  sndq %s", config.HumanBytes(float64(cur.SendQueue)))
	}
	return b.String()
}

// liveInterval is how often the live display refreshes.
const liveInterval = 250 * time.Millisecond

// startLive draws a progress bar with the run's rate, blocked share and bytes
// in the pipe, refreshed every liveInterval, and returns the function that
// stops and clears it. It draws nothing when the output is not a terminal.
func startLive(cfg clientConfig, rec *report.Recorder, w io.Writer, start time.Time) (stop func()) {
	if !useLive(cfg, w) {
		return func() {}
	}
	dir := cfg.direction()
	byBytes := cfg.Count > 0 && (cfg.Duration == 0)
	var total int64
	if byBytes {
		total = cfg.totalBytes() * int64(cfg.Connections)
	} else {
		total = cfg.Duration.Milliseconds()
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(liveInterval / 2),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetRenderBlankState(true),
	}
	if byBytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	}
	bar := progressbar.NewOptions64(total, opts...)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(liveInterval)
		defer t.Stop()
		last, lastAt := rec.Totals(), start
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				cur := rec.Totals()
				bar.Describe(drainNote(cfg, now.Sub(start)) + liveLine(dir, &cur, &last, now.Sub(lastAt).Seconds()))
				if byBytes {
					bar.Set64(cur.Written + cur.Read)
				} else {
					bar.Set64(min(time.Since(start).Milliseconds(), total))
				}
				last, lastAt = cur, now
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		bar.Finish()
		fmt.Fprintln(w)
	}
}

// liveLine is the live display's words for one refresh: cur now, last at
// the refresh before, dt seconds ago.
func liveLine(dir flow.Direction, cur, last *report.Totals, dt float64) string {
	desc := ""
	if dir.ClientWrites() {
		blocked := max(cur.Blocked-last.Blocked, 0).Seconds() / (dt * float64(max(cur.Open, 1)))
		desc = fmt.Sprintf("up %s/s  blocked %3.0f%%%s  in pipe %s  stalls %d",
			config.HumanBytes(float64(cur.Written-last.Written)/dt), 100*min(blocked, 1), waitedOn(blocked, cur.Stalled),
			config.HumanBytes(float64(cur.InPipe)), cur.Stalls)
		desc += kernelLive(cur.Kernel, last.Kernel, dt*float64(max(liveSockets(cur), 1)))
		if cur.Verdict != "" {
			desc += "  | " + cur.Verdict
		}
	}
	if dir.ServerWrites() {
		if desc != "" {
			desc += "  "
		}
		desc += fmt.Sprintf("down %s/s", config.HumanBytes(float64(cur.Read-last.Read)/dt))
	}
	return desc
}

// liveSockets is how many sockets the kernel's figures sum over: the open
// connections, or fewer when they are streams that share sockets (the
// sampler counts each socket once).
func liveSockets(cur *report.Totals) int64 {
	if cur.Kernel != nil && cur.Kernel.Sockets > 0 {
		return min(cur.Open, int64(cur.Kernel.Sockets))
	}
	return cur.Open
}

// waitedOn says what blocked writes wait for, when they wait at all (1% of
// the time or more): " (stalled)" while a connection's server seems
// stopped, " (flowing)" while acks keep moving (the writer is faster than
// the path: throughput, not a stall); nothing without a verdict.
func waitedOn(blocked float64, stalled int) string {
	switch {
	case blocked < 0.01 || stalled < 0:
		return ""
	case stalled > 0:
		return " (stalled)"
	}
	return " (flowing)"
}

// drainNote says, once --duration is up, that the run is waiting for the
// path to take what was written, and how long it may still wait
// (--drain-timeout), so a path that never drains is seen as such, not as a
// hung client.
func drainNote(cfg clientConfig, elapsed time.Duration) string {
	if cfg.Duration <= 0 || elapsed <= cfg.Duration || !cfg.direction().ClientWrites() {
		return ""
	}
	left := max(cfg.Duration+cfg.DrainTimeout-elapsed, 0)
	return fmt.Sprintf("time up, waiting for the path to drain (%s left)  ", left.Round(time.Second))
}
