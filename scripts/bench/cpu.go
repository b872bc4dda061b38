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
)

// clockTick is the unit of /proc/PID/stat's times (USER_HZ): 100 on every
// Linux this runs on. At 5 s per case and several CPU seconds per case it
// is well under 1% of the figure.
const clockTick = 10 * time.Millisecond

// procCPU is the user + system CPU time pid and its reaped children
// (socat's per-connection forks) have used so far, from /proc/PID/stat
// (utime, stime, cutime, cstime: the whole thread group).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	// After "pid (comm) ", field 3 (state) is index 0: utime is field 14.
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var ticks int64
	for _, k := range []int{11, 12, 13, 14} {
		v, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * clockTick, nil
}

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
