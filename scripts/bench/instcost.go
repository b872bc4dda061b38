package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// The instrumentation's own cost. "bp tcp" and "bp tcp, instrumentation
// off" differ only by fixed costs a second: each side's socket sampler
// (one connection, ten passes a second) and a scrape of each side a
// second. The stream's per-write observers run in both, since the report
// is made from them. At full speed those fixed costs are well under 1% of
// about 1.4 CPU seconds a second, while this machine moves a case's CPU
// per GB by 5 to 15% from round to round, so the full-speed ratio cannot
// see them (docs/BENCHMARKS.md, "Instrumentation on against off"). Here
// the same two setups carry a slow stream instead, where the stream's own
// CPU is a few milliseconds a second, and the difference between them,
// measured to the microsecond, is the instrumentation's CPU a second. Set
// against "bp tcp"'s CPU a second in the same round, it is the share of
// the full-speed case's CPU the instrumentation takes.

// costRate is the slow stream's messages a second: it keeps the
// connection open and writing, so the sampler reads a live socket, and
// leaves the stream's own CPU small beside the instrumentation's.
const costRate = 8

// costTarget is the bound on instrumentation on against off,
// in CPU (3%).
const costTarget = 0.03

// costSide is one of the two setups: client command, whether it is
// scraped (client and server /metrics), and the server it sends to.
type costSide struct {
	cmd    []string
	urls   []string // scraped every second; none for the off side
	server *proc
}

// costSample is one measurement: CPU seconds a second of wall time.
type costSample struct{ client, server float64 }

func (s costSample) both() float64 { return s.client + s.server }

// costRound is one round's pair of measurements.
type costRound struct{ on, off costSample }

// instCost holds both setups and every round's pair of measurements.
type instCost struct {
	on, off costSide
	rounds  []costRound
}

// newInstCost sets up the two slow-stream commands against the
// instrumented and the uninstrumented server.
func newInstCost(o options, bin string, srvOn, srvOff serverAddrs) *instCost {
	slow := func(args []string) []string {
		return append(args, "--rate", strconv.Itoa(costRate), "--run-id", "cost")
	}
	onCmd, onMetrics := clientArgs(o, bin, "tcp://"+srvOn.tcp, true)
	offCmd, _ := clientArgs(o, bin, "tcp://"+srvOff.tcp, false)
	return &instCost{
		on:  costSide{cmd: slow(onCmd), urls: []string{"http://" + onMetrics + "/metrics", "http://" + srvOn.http + "/metrics"}, server: srvOn.p},
		off: costSide{cmd: slow(offCmd), server: srvOff.p},
	}
}

// runRound measures on and off once each, the order swapped every other
// round so that a drift of the machine's load does not favour one.
func (c *instCost) runRound(ctx context.Context, round int) error {
	var r costRound
	order := []bool{true, false} // on first
	if round%2 == 0 {
		order = []bool{false, true}
	}
	for _, on := range order {
		side, out := c.off, &r.off
		if on {
			side, out = c.on, &r.on
		}
		s, err := measureCost(ctx, side)
		if err != nil {
			return err
		}
		*out = s
	}
	c.rounds = append(c.rounds, r)
	return nil
}

// measureCost runs one slow stream and returns the client's CPU (its
// rusage) and the server's (its threads' run time) a second of the run.
func measureCost(ctx context.Context, s costSide) (costSample, error) {
	before, err := threadCPU(s.server.cmd.Process.Pid)
	if err != nil {
		return costSample{}, err
	}
	stop := startScraping(ctx, s.urls, time.Second)
	cmd := exec.CommandContext(ctx, s.cmd[0], s.cmd[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start).Seconds()
	stop()
	if err != nil {
		return costSample{}, fmt.Errorf("instrumentation cost: %w: %s", err, lastLines(stderr.String(), 5))
	}
	after, err := threadCPU(s.server.cmd.Process.Pid)
	if err != nil {
		return costSample{}, err
	}
	return costSample{client: rusageCPU(cmd.ProcessState).Seconds() / wall, server: (after - before).Seconds() / wall}, nil
}

// threadCPU is the CPU time pid's threads have run so far, in
// nanoseconds: the first field of each /proc/PID/task/TID/schedstat (the
// scheduler's sum_exec_runtime, user and system together). /proc/PID/stat
// counts in 10 ms ticks, too coarse for the few milliseconds a second
// measured here. A thread that has exited no longer counts; bp-server's
// threads live as long as it does.
func threadCPU(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("pid %d: no /proc/PID/task/*/schedstat", pid)
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if os.IsNotExist(err) {
			continue // the thread exited since the glob
		}
		if err != nil {
			return 0, err
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, fmt.Errorf("%s: empty", t)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", t, err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// shares is, for every round that has both, the instrumentation's CPU a
// second (on - off) as a share of fullSpeed's CPU a second in that round
// (its CPU s/GB times its GB/s).
func (c *instCost) shares(fullSpeed *benchCase) []float64 {
	if fullSpeed == nil {
		return nil
	}
	var per []float64
	for i, r := range c.rounds {
		if i >= len(fullSpeed.rates) || i >= len(fullSpeed.cpu) {
			break
		}
		cpuPerSec := fullSpeed.cpu[i] * fullSpeed.rates[i] / 1e9
		per = append(per, (r.on.both()-r.off.both())/cpuPerSec)
	}
	return per
}

// write prints the medians over rounds, in CPU milliseconds a second,
// and the share with its target.
func (c *instCost) write(w io.Writer, o options, fullSpeed *benchCase) {
	if len(c.rounds) == 0 {
		return
	}
	fmt.Fprintf(w, "\ninstrumentation's own CPU: %d messages of %s a second for %s, on and off in turn; CPU ms a second, medians over rounds\n",
		costRate, o.PayloadSize, o.Duration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\ton\toff\ton - off\tmin\tmax\t")
	row := func(name string, f func(costSample) float64) {
		var on, off, diff []float64
		for _, r := range c.rounds {
			on, off = append(on, f(r.on)*1e3), append(off, f(r.off)*1e3)
			diff = append(diff, (f(r.on)-f(r.off))*1e3)
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", name, median(on), median(off), median(diff), slices.Min(diff), slices.Max(diff))
	}
	row("client", func(s costSample) float64 { return s.client })
	row("server", func(s costSample) float64 { return s.server })
	row("both", costSample.both)
	tw.Flush()
	per := c.shares(fullSpeed)
	if len(per) == 0 {
		fmt.Fprintf(w, "share of %s's CPU at full speed: n/a (%s did not run)\n", caseTCP, caseTCP)
		return
	}
	m := median(per)
	verdict := "met"
	if m > costTarget {
		verdict = "MISSED"
	}
	fmt.Fprintf(w, "share of %s's CPU at full speed: %.2f%% (%.2f%% to %.2f%%), target <= %.0f%% %s\n",
		caseTCP, m*100, slices.Min(per)*100, slices.Max(per)*100, costTarget*100, verdict)
}

// amplifiedName is -amplify's case: bp tcp with its instrumentation k
// times as often as the default.
func amplifiedName(k int) string { return fmt.Sprintf("%s, instrumentation x%d", caseTCP, k) }

// addAmplified adds -amplify's case: a third bp-server sampling every
// 100ms/k, and bp-client sampling as often and scraped, with the server,
// k times a second. Its CPU per GB over the uninstrumented case's, less 1,
// over k, is the instrumentation's share at full speed per 1x, which
// should agree with the slow stream's measure: what the instrumentation
// costs does not grow with the stream's speed.
func addAmplified(ctx context.Context, o options, bin string, start startFunc, add addFunc) error {
	k := o.Amplify
	every := (100 * time.Millisecond / time.Duration(k)).String()
	srv, err := startServer(ctx, start, bin, "bp-server-amplified", every)
	if err != nil {
		return err
	}
	c := add(amplifiedName(k), "", true, "tcp://"+srv.tcp)
	if i := slices.Index(c.cmd, "--sample-interval"); i >= 0 {
		c.cmd[i+1] = every
	}
	c.peers, c.serverHTTP, c.scrapeEvery = []*proc{srv.p}, srv.http, time.Second/time.Duration(k)
	return nil
}

// writeAmplified prints -amplify's check: per round, the amplified case's
// CPU per GB over the uninstrumented case's and its throughput under it,
// each divided by k: the instrumentation's share per 1x at full speed.
func (r *Result) writeAmplified(w io.Writer) {
	k := r.Options.Amplify
	amp, off := r.lookup(amplifiedName(k)), r.lookup(caseTCPOff)
	if k <= 1 || amp == nil || off == nil || len(amp.cpu) == 0 {
		return
	}
	var cpu, rate []float64
	for i := range min(len(amp.cpu), len(off.cpu)) {
		cpu = append(cpu, (amp.cpu[i]/off.cpu[i]-1)/float64(k))
		rate = append(rate, (1-amp.rates[i]/off.rates[i])/float64(k))
	}
	fmt.Fprintf(w, "full-speed check, the instrumentation x%d against off, per 1x: CPU per GB +%.2f%% (%.2f%% to %.2f%%), throughput -%.2f%% (%.2f%% to %.2f%%)\n",
		k, median(cpu)*100, slices.Min(cpu)*100, slices.Max(cpu)*100, median(rate)*100, slices.Min(rate)*100, slices.Max(rate)*100)
}
