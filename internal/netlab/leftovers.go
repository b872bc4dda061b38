package netlab

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RemoveLeftovers deletes the namespaces of lab runs whose process is gone
// (a lab killed with SIGKILL cannot clean up), and kills what still runs
// in them. Namespaces of a running lab are left alone.
func RemoveLeftovers(ctx context.Context) []string {
	entries, _ := os.ReadDir("/run/netns")
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, Prefix) {
			continue
		}
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(name, Prefix), "-", 2)[0])
		if err != nil || alive(pid) {
			continue
		}
		if removeNS(name) == nil {
			removed = append(removed, name)
		}
	}
	return removed
}

// alive reports whether a process with the pid exists.
func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

// killIn kills the processes in the namespace, by the pids ip netns pids
// lists: processes a lab run started there.
func killIn(ctx context.Context, ns string) {
	for range 3 {
		out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
		pids := strings.Fields(string(out))
		if err != nil || len(pids) == 0 {
			return
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// List returns the namespaces of the lab on this machine, any run.
func List() []string {
	entries, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), Prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}
