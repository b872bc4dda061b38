// Package proccpu reads a process's CPU time as the kernel counts it, the
// reference the benchmark scripts measure CPU per byte with and check the
// processes' own process_cpu_seconds_total against.
package proccpu

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/PID/stat's times (USER_HZ): 100 on every
// Linux this runs on.
const clockTick = 10 * time.Millisecond

// Used is the user + system CPU time pid and its reaped children (socat's
// per-connection forks) have used so far, from /proc/PID/stat (utime,
// stime, cutime, cstime: the whole thread group), in whole ticks of 10 ms.
func Used(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and ")"
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
