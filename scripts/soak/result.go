package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The bounds the soak holds the hops to (docs/SAFETY.md, "Soak").
const (
	endSlack     = 8        // fds and goroutines once the peers are gone: at most start + this
	rssGrowth    = 0.25     // RSS, median of the last third of the run over the middle third: at most +25% ...
	rssSlackKiB  = 16 << 10 // ... + 16 MiB
	fdMarginSoak = 64       // fds besides connections, as internal/hop's fdMargin
)

// point is one sample of one hop.
type point struct {
	phase      string // start, load, end
	fds        int
	goroutines int
	rssKiB     int
	healthy    bool
}

// Result gathers the soak's samples and runs.
type Result struct {
	o    options
	hops []*hop

	mu      sync.Mutex
	points  map[string][]point // by hop name
	good    map[string][2]int  // by target: runs, conserved
	bad     []string           // why runs were not conserved
	hostile map[string]*atomic.Int64
	lines   map[string]int  // log lines per hop
	exited  map[string]bool // a hop had exited by the end of the run
}

func newResult(o options, hops ...*hop) *Result {
	return &Result{o: o, hops: hops, points: map[string][]point{}, good: map[string][2]int{},
		hostile: map[string]*atomic.Int64{}, lines: map[string]int{}, exited: map[string]bool{}}
}

// hostileCounter is the attempt counter of a kind of hostile peer.
func (r *Result) hostileCounter(kind string) *atomic.Int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &atomic.Int64{}
	r.hostile[kind] = c
	return c
}

// goodRun records a good run: why is "" when it conserved its bytes.
func (r *Result) goodRun(target, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.good[target]
	g[0]++
	if why == "" {
		g[1]++
	} else {
		r.bad = append(r.bad, target+": "+why)
	}
	r.good[target] = g
}

// sample takes one point of every hop and returns it as a line.
func (r *Result) sample(ctx context.Context, phase string) string {
	var line []string
	for _, h := range r.hops {
		p := point{phase: phase, fds: fdCount(h.cmd.Process.Pid), rssKiB: rssKiB(h.cmd.Process.Pid),
			goroutines: goroutines(ctx, h.metricsURL()), healthy: healthz(ctx, h.httpAddr) == nil}
		r.mu.Lock()
		r.points[h.name] = append(r.points[h.name], p)
		r.mu.Unlock()
		line = append(line, fmt.Sprintf("%s fds=%d goroutines=%d rss=%.1fMiB healthz=%v", h.name, p.fds, p.goroutines, float64(p.rssKiB)/1024, p.healthy))
	}
	return strings.Join(line, "  ")
}

// settle waits (at most 60 s) until neither hop has a connection open.
func (r *Result) settle(ctx context.Context) {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		open := 0.0
		for _, h := range r.hops {
			open += metricSum(ctx, h.metricsURL(), "bp_connections")
		}
		if open == 0 {
			time.Sleep(time.Second) // the last goroutines return
			return
		}
	}
}

// finish notes, before the hops are stopped, whether each is still
// running, and counts its log lines.
func (r *Result) finish(hops ...*hop) {
	for _, h := range hops {
		r.exited[h.name] = h.exited()
		b, _ := os.ReadFile(h.log)
		r.lines[h.name] = bytes.Count(b, []byte("\n"))
	}
}

func fdCount(pid int) int {
	ents, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	return len(ents)
}

// rssKiB is VmRSS from /proc/PID/status.
func rssKiB(pid int) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

func goroutines(ctx context.Context, url string) int {
	return int(metricSum(ctx, url, "go_goroutines"))
}

// metricSum adds up every series of name on /metrics at url (-1: no answer).
func metricSum(ctx context.Context, url, name string) float64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && (f[0] == name || strings.HasPrefix(f[0], name+"{")) {
			v, _ := strconv.ParseFloat(f[1], 64)
			sum += v
		}
	}
	return sum
}

// stats of one metric over the load phase, and at start and end.
type stats struct{ start, min, median, max, end int }

func (r *Result) stats(name string, get func(point) int) stats {
	var load []int
	var s stats
	for _, p := range r.points[name] {
		switch p.phase {
		case "start":
			s.start = get(p)
		case "end":
			s.end = get(p)
		default:
			load = append(load, get(p))
		}
	}
	if len(load) > 0 {
		slices.Sort(load)
		s.min, s.median, s.max = load[0], load[len(load)/2], load[len(load)-1]
	}
	return s
}

// thirds are the medians of the middle and last third of the load
// samples of one metric.
func (r *Result) thirds(name string, get func(point) int) (middle, last int) {
	var load []int
	for _, p := range r.points[name] {
		if p.phase == "load" {
			load = append(load, get(p))
		}
	}
	n := len(load) / 3
	if n == 0 {
		return 0, 0
	}
	med := func(v []int) int { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	return med(load[n : 2*n]), med(load[len(load)-n:])
}

// fdBound is the most fds a hop of the soak's profile holds: as
// internal/hop's start-up check counts them.
func fdBound(name string) int {
	perConn := 1
	if name == "bp-relay" {
		perConn = 2
	}
	return 2*perConn*200 + 100 + fdMarginSoak
}

// check is one pass/fail line.
type check struct {
	ok   bool
	text string
}

// checks are the soak's verdict, line by line.
func (r *Result) checks() []check {
	var cs []check
	runs, conserved := 0, 0
	for _, g := range r.good {
		runs, conserved = runs+g[0], conserved+g[1]
	}
	cs = append(cs, check{runs > 0 && runs == conserved, fmt.Sprintf("every good run completed with its bytes conserved (%d of %d)", conserved, runs)})
	for _, h := range r.hops {
		fds, gor := r.stats(h.name, func(p point) int { return p.fds }), r.stats(h.name, func(p point) int { return p.goroutines })
		unhealthy := 0
		for _, p := range r.points[h.name] {
			if !p.healthy {
				unhealthy++
			}
		}
		mid, last := r.thirds(h.name, func(p point) int { return p.rssKiB })
		cs = append(cs,
			check{!r.exited[h.name], h.name + " still running at the end"},
			check{unhealthy == 0, fmt.Sprintf("%s /healthz answered at every sample (%d failed of %d)", h.name, unhealthy, len(r.points[h.name]))},
			check{fds.max <= fdBound(h.name), fmt.Sprintf("%s fds under load at most %d (max %d)", h.name, fdBound(h.name), fds.max)},
			check{fds.end <= fds.start+endSlack, fmt.Sprintf("%s fds back to start+%d once the peers left (%d -> %d)", h.name, endSlack, fds.start, fds.end)},
			check{gor.end <= gor.start+endSlack, fmt.Sprintf("%s goroutines back to start+%d once the peers left (%d -> %d)", h.name, endSlack, gor.start, gor.end)},
			check{float64(last) <= float64(mid)*(1+rssGrowth)+rssSlackKiB, fmt.Sprintf("%s RSS flat: last third's median within +%.0f%% +%d MiB of the middle third's (%.1f -> %.1f MiB)",
				h.name, 100*rssGrowth, rssSlackKiB>>10, float64(mid)/1024, float64(last)/1024)},
		)
	}
	return cs
}

// Pass reports whether every check passed.
func (r *Result) Pass() bool {
	for _, c := range r.checks() {
		if !c.ok {
			return false
		}
	}
	return true
}

// WriteTable prints the samples' summary, the runs, the hostile peers and
// the checks.
func (r *Result) WriteTable(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(w, "\nsoak: %s of peers, sampled every %s\n\n", r.o.Duration, r.o.Interval)
	fmt.Fprintf(w, "%-10s %-11s %7s %7s %7s %7s %7s\n", "process", "metric", "start", "min", "median", "max", "end")
	for _, h := range r.hops {
		for _, m := range []struct {
			name string
			get  func(point) int
			div  float64
		}{{"fds", func(p point) int { return p.fds }, 1}, {"goroutines", func(p point) int { return p.goroutines }, 1}, {"rss MiB", func(p point) int { return p.rssKiB }, 1024}} {
			s := r.stats(h.name, m.get)
			fmt.Fprintf(w, "%-10s %-11s %7.1f %7.1f %7.1f %7.1f %7.1f\n", h.name, m.name,
				float64(s.start)/m.div, float64(s.min)/m.div, float64(s.median)/m.div, float64(s.max)/m.div, float64(s.end)/m.div)
		}
	}
	fmt.Fprintf(w, "\n%-22s %6s %10s\n", "good runs (bp-client)", "runs", "conserved")
	for _, name := range sortedKeys(r.good) {
		fmt.Fprintf(w, "%-22s %6d %10d\n", name, r.good[name][0], r.good[name][1])
	}
	fmt.Fprintf(w, "\n%-22s %8s\n", "hostile peers", "attempts")
	for _, name := range sortedKeys(r.hostile) {
		fmt.Fprintf(w, "%-22s %8d\n", name, r.hostile[name].Load())
	}
	fmt.Fprintln(w)
	for _, name := range sortedKeys(r.lines) {
		fmt.Fprintf(w, "%s wrote %d log lines (%.0f a minute)\n", name, r.lines[name], float64(r.lines[name])/r.o.Duration.Minutes())
	}
	for i, why := range r.bad {
		if i == 10 {
			fmt.Fprintf(w, "... and %d more runs not conserved\n", len(r.bad)-10)
			break
		}
		fmt.Fprintln(w, "not conserved:", why)
	}
	fmt.Fprintln(w)
	pass := true
	for _, c := range r.checks() {
		word := "PASS"
		if !c.ok {
			word, pass = "FAIL", false
		}
		fmt.Fprintf(w, "%s  %s\n", word, c.text)
	}
	fmt.Fprintf(w, "\nresult: %s\n", map[bool]string{true: "PASS", false: "FAIL"}[pass])
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
