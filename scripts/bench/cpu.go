package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/proccpu"
)

// procCPU is the user + system CPU time pid and its reaped children have
// used so far, as the kernel counts it (proccpu.Used). At 5 s per case and
// several CPU seconds per case its 10 ms tick is well under 1% of the
// figure.
func procCPU(pid int) (time.Duration, error) { return proccpu.Used(pid) }

// rusageCPU is a finished process's user + system time, from its rusage
// (microseconds).
func rusageCPU(ps *os.ProcessState) time.Duration {
	if ps == nil {
		return 0
	}
	return ps.UserTime() + ps.SystemTime()
}

// peersCPU sums procCPU over the long-running processes of a case.
func peersCPU(peers []*proc) (time.Duration, error) {
	var sum time.Duration
	for _, p := range peers {
		d, err := procCPU(p.cmd.Process.Pid)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p.name, err)
		}
		sum += d
	}
	return sum, nil
}

// busyLoad is -load's background load: a shell busy loop, pinned to the
// last CPU with taskset when pin is set and taskset is installed, as
// another tenant's CPU-bound job would be.
func busyLoad(start func(string, []string, ...string) (*proc, error), pin bool) (string, error) {
	args := []string{"sh", "-c", "while :; do :; done"}
	what := "one busy-loop process, not pinned"
	if pin {
		if _, err := exec.LookPath("taskset"); err == nil {
			cpu := strconv.Itoa(runtime.NumCPU() - 1)
			args = append([]string{"taskset", "-c", cpu}, args...)
			what = "one busy-loop process pinned to CPU " + cpu
		}
	}
	_, err := start("load", nil, args...)
	return what, err
}

// machine describes where the bench runs, for docs/BENCHMARKS.md.
func machine() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	var u syscall.Utsname
	kernel := "?"
	if syscall.Uname(&u) == nil {
		kernel = utsString(u.Release[:])
	}
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s", runtime.NumCPU(), model, kernel, runtime.Version())
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

// loadAvg is /proc/loadavg's 1-minute figure ("?" when unreadable).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
