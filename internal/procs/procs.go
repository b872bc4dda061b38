// Package procs fits the Go runtime's processors (GOMAXPROCS) to the
// connections a bp process serves.
//
// Why: a lone connection at full speed is one goroutine that writes (or
// reads) and parks on the netpoller between system calls. With a second
// processor idle, every park and wake-up can hand the goroutine between
// the runtime's threads (an idle processor is woken, spins, finds nothing
// and sleeps again), and on a machine whose other CPU is busy the
// goroutine lands half of the time on the thread that shares that CPU.
// Measured on loopback with 2 CPUs (docs/BENCHMARKS.md, "The runtime's
// processors"): one processor per busy connection took about a tenth off
// bp-client's and bp-server's CPU per GB and added as much throughput
// on a quiet machine (less, within the spread, under load). As many
// connections as CPUs keep every processor, as before.
//
// A GOMAXPROCS set in the environment is the user's choice and wins:
// nothing here changes it then.
package procs

import (
	"os"
	"runtime"
	"sync"
	"time"
)

// userSet reports whether the user chose GOMAXPROCS.
func userSet() bool { return os.Getenv("GOMAXPROCS") != "" }

// Fixed sets GOMAXPROCS to busy (at least 1, at most the runtime's own
// default) for a process whose busy goroutines are known at start
// (bp-client: its connections and streams), unless the user set
// GOMAXPROCS. It returns the processors the process runs with.
func Fixed(busy int) int {
	most := runtime.GOMAXPROCS(0)
	if userSet() {
		return most
	}
	n := min(max(busy, 1), most)
	if n != most {
		runtime.GOMAXPROCS(n)
	}
	return n
}

// LowerAfter is how long a Fitter's count must stay below its processors
// before it gives one back: connections that come and go one after the
// other then cost no change at all, and a change (which stops the world
// for a moment) happens at most about once a second.
const LowerAfter = time.Second

// A Fitter holds GOMAXPROCS at the number of connections open (at least
// 1, at most the runtime's default), for a server whose connections come
// and go: it raises the processors at once when a connection opens beyond
// them, and lowers them LowerAfter after the count fell. A nil *Fitter
// does nothing, so callers need not check.
type Fitter struct {
	mu    sync.Mutex
	most  int // the runtime's default: never more
	open  int
	cur   int
	timer *time.Timer
	set   func(int) // runtime.GOMAXPROCS; a test records instead
	after time.Duration
}

// NewFitter returns a Fitter that starts the process on one processor,
// or nil when the user set GOMAXPROCS or the runtime has one processor
// anyway.
func NewFitter() *Fitter {
	most := runtime.GOMAXPROCS(0)
	if userSet() || most < 2 {
		return nil
	}
	return newFitter(most, func(n int) { runtime.GOMAXPROCS(n) }, LowerAfter)
}

func newFitter(most int, set func(int), after time.Duration) *Fitter {
	f := &Fitter{most: most, cur: 1, set: set, after: after}
	set(1)
	return f
}

// Open counts a connection that opened.
func (f *Fitter) Open() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.open++
	if f.open > f.cur && f.cur < f.most {
		f.cur = min(f.open, f.most)
		f.set(f.cur)
	}
}

// Close counts a connection that ended.
func (f *Fitter) Close() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.open--
	if f.open < f.cur && f.cur > 1 && f.timer == nil {
		f.timer = time.AfterFunc(f.after, f.lower)
	}
}

// lower gives back the processors the connections no longer use, or
// waits again if the count went up in between and down once more.
func (f *Fitter) lower() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timer = nil
	want := min(max(f.open, 1), f.most)
	if want < f.cur {
		f.cur = want
		f.set(want)
	}
}

// Procs is the processors the Fitter set last (the most it may set when
// f is nil: the runtime's own).
func (f *Fitter) Procs() int {
	if f == nil {
		return runtime.GOMAXPROCS(0)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}
