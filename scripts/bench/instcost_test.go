package main

import (
	"bufio"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestThreadCPU checks the threads' run time the instrumentation cost is
// measured with against the kernel's other count of the same time: a
// child's rusage once it has exited. The child burns CPU, says so, and
// sleeps; its run time read while it sleeps must be what its rusage says
// at exit, to within the little it spends waking and exiting.
func TestThreadCPU(t *testing.T) {
	cmd := exec.Command("sh", "-c", `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo burnt; sleep 0.3`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "burnt" {
		t.Fatalf("child said %q, %v", line, err)
	}
	got, err := threadCPU(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	want := rusageCPU(cmd.ProcessState)
	t.Logf("threads' run time while asleep %v, rusage at exit %v", got, want)
	if want < 50*time.Millisecond {
		t.Fatalf("the child burnt only %v: too little to compare", want)
	}
	// rusage comes after: it also holds the echo, the sleep's fork and
	// exec and the exit, a few milliseconds at most.
	if d := want - got; d < -time.Millisecond || d > 10*time.Millisecond {
		t.Errorf("threadCPU %v, rusage %v: %v apart", got, want, d)
	}
}

// TestInstCostShares: the share is each round's on - off difference over
// the full-speed case's CPU a second in the same round, and the table
// says whether it meets the 3% target.
func TestInstCostShares(t *testing.T) {
	c := &instCost{}
	c.rounds = append(c.rounds,
		costRound{costSample{0.010, 0.006}, costSample{0.007, 0.002}}, // 7 ms/s
		costRound{costSample{0.012, 0.010}, costSample{0.008, 0.002}}) // 12 ms/s
	// 0.7 s/GB at 2 GB/s: 1.4 CPU s a second; 0.5 s/GB at 1 GB/s: 0.5.
	full := &benchCase{name: caseTCP, rates: []float64{2e9, 1e9}, cpu: []float64{0.7, 0.5}}
	per := c.shares(full)
	if len(per) != 2 || !near(per[0], 0.007/1.4) || !near(per[1], 0.012/0.5) {
		t.Fatalf("shares %v, want [0.005 0.024]", per)
	}
	var b strings.Builder
	c.write(&b, options{Duration: time.Second, PayloadSize: "128KiB"}, full)
	out := b.String()
	for _, want := range []string{
		"both    19.00  9.50  9.50      7.00  12.00",
		"share of bp tcp's CPU at full speed: 1.45% (0.50% to 2.40%), target <= 3% met",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	c.rounds[1].on.server = 0.030 // (42 - 10) ms/s over 0.5: 6.4%, median 3.45%
	b.Reset()
	c.write(&b, options{Duration: time.Second, PayloadSize: "128KiB"}, full)
	if !strings.Contains(b.String(), "target <= 3% MISSED") {
		t.Errorf("a 3.45%% median is not reported missed:\n%s", b.String())
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
