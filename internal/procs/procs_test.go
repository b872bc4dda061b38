package procs

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder keeps every GOMAXPROCS a Fitter set, instead of setting it.
type recorder struct {
	mu  sync.Mutex
	set []int
}

func (r *recorder) record(n int) { r.mu.Lock(); r.set = append(r.set, n); r.mu.Unlock() }

func (r *recorder) sets() []int { r.mu.Lock(); defer r.mu.Unlock(); return slices.Clone(r.set) }

// TestFitterFollowsConnections: one processor to start; one more at once
// for each connection beyond them, never more than the runtime's; fewer
// only after the count stayed lower for the delay; never fewer than one;
// and connections that come and go one after the other change nothing.
func TestFitterFollowsConnections(t *testing.T) {
	var r recorder
	const after = 100 * time.Millisecond
	f := newFitter(4, r.record, after)
	if got := r.sets(); !slices.Equal(got, []int{1}) {
		t.Fatalf("at start set %v, want [1]", got)
	}
	for range 10 { // one connection at a time
		f.Open()
		f.Close()
	}
	time.Sleep(2 * after)
	if got := r.sets(); !slices.Equal(got, []int{1}) {
		t.Fatalf("after sequential connections set %v, want [1]", got)
	}
	for range 6 {
		f.Open()
	}
	if got := r.sets(); !slices.Equal(got, []int{1, 2, 3, 4}) || f.Procs() != 4 {
		t.Fatalf("after 6 opens set %v (procs %d), want [1 2 3 4] (4: the most)", got, f.Procs())
	}
	for range 4 {
		f.Close()
	}
	if f.Procs() != 4 {
		t.Fatalf("right after the closes procs %d, want still 4 (lowered only after %s)", f.Procs(), after)
	}
	f.Open() // 3 open: in the delay, the count rose again
	time.Sleep(3 * after)
	if got := r.sets(); !slices.Equal(got, []int{1, 2, 3, 4, 3}) {
		t.Fatalf("after the delay set %v, want [1 2 3 4 3]", got)
	}
	for range 3 {
		f.Close()
	}
	time.Sleep(3 * after)
	if got := r.sets(); !slices.Equal(got, []int{1, 2, 3, 4, 3, 1}) || f.Procs() != 1 {
		t.Fatalf("with none open set %v (procs %d), want ... 1", got, f.Procs())
	}
}

// TestNilFitter: a nil Fitter (the user set GOMAXPROCS) does nothing.
func TestNilFitter(t *testing.T) {
	var f *Fitter
	f.Open()
	f.Close()
	if f.Procs() < 1 {
		t.Fatal("a nil Fitter's Procs is the runtime's, at least 1")
	}
}

// TestUserChoiceWins: with GOMAXPROCS in the environment there is no
// Fitter, and Fixed leaves the runtime's setting alone.
func TestUserChoiceWins(t *testing.T) {
	t.Setenv("GOMAXPROCS", "3")
	if NewFitter() != nil {
		t.Error("NewFitter with GOMAXPROCS set: want nil")
	}
	before := Fixed(1) // the runtime's, unchanged
	if before < 1 {
		t.Errorf("Fixed returned %d", before)
	}
}
