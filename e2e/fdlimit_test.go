package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fdCount is how many file descriptors process pid holds.
func fdCount(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Skipf("no /proc/PID/fd: %v", err)
	}
	return len(ents)
}

// setNOFILE sets process pid's RLIMIT_NOFILE, soft and hard, to n (prlimit
// on the running process: the binary's start-up raise cannot undo it).
func setNOFILE(t testing.TB, pid, n int) {
	t.Helper()
	lim := unix.Rlimit{Cur: uint64(n), Max: uint64(n)}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Skipf("prlimit: %v", err)
	}
}

// healthz reports whether GET /healthz on addr answers 200 within a second.
func healthz(addr string) error {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// TestOutOfFileDescriptors (issue 13, defect 1): a bp-server and a
// bp-relay whose file descriptors run out (their RLIMIT_NOFILE lowered to
// what they hold plus 16, then 60 connections) do not exit, as they did
// ("tcp accept: too many open files", status 1): accept backs off and
// tries again, counted in bp_accept_errors_total{reason="fd_limit"} and
// logged at a bounded rate. Once the peers close, /healthz answers again
// and a new run passes.
func TestOutOfFileDescriptors(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--hello-timeout", "30s", "--sample-interval", "0")
	relay := startRelay(t, srv.TCPURL(), "--hello-timeout", "30s", "--sample-interval", "0")
	for _, h := range []struct {
		name              string
		proc              *Proc
		tcpAddr, httpAddr string
	}{{"bp-server", srv.Proc, srv.TCPAddr, srv.HTTPAddr}, {"bp-relay", relay.Proc, relay.TCPAddr, relay.HTTPAddr}} {
		t.Run(h.name, func(t *testing.T) {
			pid := h.proc.Pid()
			setNOFILE(t, pid, fdCount(t, pid)+16)
			var peers []net.Conn
			for range 60 { // the kernel completes them in the backlog; accept() fails
				c, err := net.DialTimeout("tcp", h.tcpAddr, 2*time.Second)
				if err != nil {
					break
				}
				peers = append(peers, c)
			}
			failed := h.proc.WaitLog(t, "accept failed: backing off", 10*time.Second)
			if failed["reason"] != "fd_limit" || failed["listener"] != "tcp" {
				t.Errorf("accept failure logged as %v, want reason fd_limit on listener tcp", failed)
			}
			time.Sleep(time.Second) // a few back-offs
			if h.proc.Exited() {
				t.Fatalf("%s exited when out of file descriptors; stderr:\n%s", h.name, h.proc.Stderr())
			}
			if n := len(h.proc.Logs("accept failed: backing off")); n > 10 {
				t.Errorf("%d accept failure lines in a second, want the bounded rate (5, then one per 10s)", n)
			}
			for _, c := range peers {
				c.Close()
			}
			eventually(t, 15*time.Second, func() string {
				if err := healthz(h.httpAddr); err != nil {
					return "/healthz after the peers closed: " + err.Error()
				}
				return ""
			})
			m := scrape(t, "http://"+h.httpAddr+"/metrics")
			if n := m.Value(t, "bp_accept_errors_total", "listener", "tcp", "reason", "fd_limit"); n < 1 {
				t.Errorf("bp_accept_errors_total{listener=tcp,reason=fd_limit} = %v, want >= 1", n)
			}
			if h.proc.Exited() {
				t.Fatalf("%s exited; stderr:\n%s", h.name, h.proc.Stderr())
			}
		})
	}
	// Both serve a run again, end to end.
	for _, target := range []string{srv.TCPURL(), relay.Target("tcp")} {
		if _, code, out := runClient(t, "--target", target, "--duration", "1s"); code != 0 {
			t.Errorf("run to %s after the exhaustion: exit %d\n%s", target, code, out)
		}
	}
}

// TestFDLimitWarning: limits that cannot fit RLIMIT_NOFILE are said at
// start, once, with the numbers; limits that fit are not warned about.
func TestFDLimitWarning(t *testing.T) {
	t.Parallel()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip(err)
	}
	tooMany := strconv.FormatUint(lim.Max/2+1, 10) // two listeners: more than the hard limit
	const warning = "connection limits exceed the file descriptor limit: accept fails and is retried before --max-connections refuses anyone; lower --max-connections or raise ulimit -n"
	big := startServer(t, "--max-connections", tooMany)
	l := big.WaitLog(t, warning, 5*time.Second)
	soft, _ := l["nofile_soft"].(float64)
	need, _ := l["fds_needed"].(float64)
	if uint64(soft) != lim.Max || need <= soft {
		t.Errorf("warning %v: want nofile_soft raised to the hard limit %d and fds_needed above it", l, lim.Max)
	}
	if n := len(big.Logs(warning)); n != 1 {
		t.Errorf("%d warnings, want 1", n)
	}
	small := startServer(t, "--max-connections", "100")
	small.WaitLog(t, "file descriptor limit", 5*time.Second)
	if n := len(small.Logs(warning)); n != 0 {
		t.Errorf("limits that fit warned about: %v", small.Logs(warning))
	}
}

// TestFDLimitDefaultFits: a bp-server whose file descriptors are few
// (prlimit --nofile 300, before it starts) and whose --max-connections is
// left at its default lowers it to what fits: (300 - 10 HTTP connections -
// 64 of margin) / 2 listeners = 113 a listener, logged, with no warning.
// The server then refuses the 114th raw TCP connection, as its own
// count of refusals says, while the 113 before it are held.
func TestFDLimitDefaultFits(t *testing.T) {
	t.Parallel()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit not installed (apt-get install util-linux)")
	}
	const fit = 113
	args := []string{"--nofile=300:300", "--", binary("bp-server"), "--http-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0", "--grpc-addr", "",
		"--log-format", "json", "--max-http-connections", "10", "--hello-timeout", "30s", "--sample-interval", "0"}
	p := startCmd(t, "bp-server", exec.Command(prlimit, args...), nil)
	l := p.WaitLog(t, "bp-server listening", 20*time.Second)
	lowered := p.WaitLog(t, "--max-connections (not set) lowered from its default to what the file descriptor limit fits", time.Second)
	if lowered["max_connections"] != float64(fit) || lowered["default"] != float64(20000) || l["max_connections"] != float64(fit) {
		t.Errorf("lowered %v, listening with %v; want max_connections %d from the default 20000", lowered, l["max_connections"], fit)
	}
	if w := p.Logs("connection limits exceed the file descriptor limit: accept fails and is retried before --max-connections refuses anyone; lower --max-connections or raise ulimit -n"); len(w) != 0 {
		t.Errorf("a default fitted to the limit still warned: %v", w)
	}
	tcpAddr, _ := l["tcp"].(string)
	var peers []net.Conn
	defer func() {
		for _, c := range peers {
			c.Close()
		}
	}()
	for range fit + 1 {
		c, err := net.DialTimeout("tcp", tcpAddr, 2*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", len(peers)+1, err)
		}
		peers = append(peers, c)
	}
	metricsURL := "http://" + l["http"].(string) + "/metrics"
	eventually(t, 10*time.Second, func() string {
		if refused := scrape(t, metricsURL).Value(t, "bp_connections_rejected_total", "protocol", "tcp", "reason", "limit"); refused != 1 {
			return fmt.Sprintf("%d connections made, %v refused for the limit; want 1", len(peers), refused)
		}
		return ""
	})
	// The kernel's view: the last one is closed by the server, the first held.
	last, first := peers[fit], peers[0]
	last.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := last.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("connection %d: read %v, want it closed by the server", fit+1, err)
	}
	first.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := first.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("connection 1: read %v, want it held open (no data, no close)", err)
	}
}

// TestClientFDLimit: a bp-client asked for more connections than its
// open-file limit allows refuses at once, with exit status 2 and the
// numbers, and dials nothing. It once started the run, loaded the server
// with what fitted and failed the rest one by one ("27,559 connections
// failed"), with no word of the limit.
func TestClientFDLimit(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command("sh", "-c", `ulimit -n 100 && exec "$0" "$@"`, binary("bp-client"),
		"--target", "tcp://"+ln.Addr().String(), "--connections", "200", "--duration", "1s", "--metrics-addr", "")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit %v, want status 2; output:\n%s", err, out)
	}
	const want = `bp-client: invalid value "200" for --connections (BP_CONNECTIONS): needs about 232 file descriptors (one per connection and 32 more), over the open-file limit of 100 (ulimit -n; hard limit 100): lower --connections or raise the limit, on the server too`
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(200 * time.Millisecond))
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Error("the refused run dialled the target")
	}
	// 68 connections fit in 100: the same run goes ahead.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ok := exec.CommandContext(ctx, "sh", "-c", `ulimit -n 100 && exec "$0" "$@"`, binary("bp-client"),
		"--target", "tcp://"+ln.Addr().String(), "--connections", "68", "--duration", "100ms", "--metrics-addr", "", "--drain-timeout", "100ms")
	if out, err := ok.CombinedOutput(); strings.Contains(string(out), "file descriptors") {
		t.Errorf("68 connections in 100 descriptors refused: %v\n%s", err, out)
	}
}
