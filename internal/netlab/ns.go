package netlab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Prefix starts every namespace the lab makes: bplab-<pid>-<host>.
const Prefix = "bplab-"

// run runs a command (ip, tc) and wraps its output into the error, since
// iproute2's message is the only useful part of a failure.
func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// inNS runs a command inside the namespace ns.
func inNS(ctx context.Context, ns, name string, args ...string) error {
	return run(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Exec returns the argv that runs bin inside the namespace ns: ip netns
// exec execs bin in place, so the pid the lab starts is bin's own and it is
// stopped by that pid.
func Exec(ns, bin string, args ...string) (string, []string) {
	return "ip", append([]string{"netns", "exec", ns, bin}, args...)
}

// Do runs fn on an OS thread that has entered the namespace ns, for what
// belongs to a namespace when it is made (a TUN device, a socket): the
// thread goes back to its own namespace after fn, or, when it cannot,
// stays locked so the Go runtime ends it rather than reuse it.
func Do(ns string, fn func() error) error {
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("own namespace: %w", err)
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter %s: %w", ns, err)
	}
	ferr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("leave %s: %w", ns, err) // the thread stays locked and dies with the goroutine
	}
	runtime.UnlockOSThread()
	return ferr
}

// dialing maps an address of a host to its namespace, so that the lab,
// which runs in the machine's own namespace, reaches the hosts' metrics
// pages: a socket belongs to the namespace it was made in.
var dialing struct {
	sync.Mutex
	ns map[string]string // IP -> namespace
}

func register(ip, ns string) {
	dialing.Lock()
	defer dialing.Unlock()
	if dialing.ns == nil {
		dialing.ns = map[string]string{}
	}
	dialing.ns[ip] = ns
}

func unregister(ip string) {
	dialing.Lock()
	defer dialing.Unlock()
	delete(dialing.ns, ip)
}

// DialContext dials addr from inside the namespace of the host that owns
// its IP, or from the machine's own namespace for any other address (an
// http.Transport's DialContext).
func DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, _ := net.SplitHostPort(addr)
	dialing.Lock()
	ns := dialing.ns[host]
	dialing.Unlock()
	var d net.Dialer
	if ns == "" {
		return d.DialContext(ctx, network, addr)
	}
	var conn net.Conn
	err := Do(ns, func() error {
		var err error
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}
