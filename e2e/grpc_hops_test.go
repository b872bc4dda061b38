package e2e

import (
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/lab"
)

// startGRPCHop starts nginx (grpc_pass) or HAProxy (h2 both sides) with its
// config from deploy/ in front of upstream, bp-server's gRPC listener, and
// returns where gRPC clients connect.
func startGRPCHop(t *testing.T, name, upstream string) string {
	t.Helper()
	listen, status := "127.0.0.1:"+strconv.Itoa(freePort(t)), "127.0.0.1:"+strconv.Itoa(freePort(t))
	switch name {
	case "nginx":
		needTool(t, "nginx", "nginx")
		prefix := t.TempDir()
		conf, err := lab.RenderNginx(filepath.Join(labDeploy, "nginx", "nginx-grpc.conf"), prefix, lab.NginxVars(listen, upstream, status))
		if err != nil {
			t.Fatal(err)
		}
		args, err := lab.NginxArgs(prefix, conf, false)
		if err != nil {
			t.Fatal(err)
		}
		startTool(t, "nginx", nil, args...)
	case "haproxy":
		return startHAProxy(t, "haproxy-grpc.cfg", upstream)
	}
	waitListening(t, name, listen)
	return listen
}

// waitListening waits (up to 10 s) until the program called name accepts
// connections on addr: a proxy started by startTool.
func waitListening(t *testing.T, name, addr string) {
	t.Helper()
	eventually(t, 10*time.Second, func() string {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return name + " not listening: " + err.Error()
		}
		c.Close()
		return ""
	})
}

// startTool runs an installed program (a proxy) for the test, its output
// kept for the failure message, stopped by its pid at cleanup.
func startTool(t *testing.T, name string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = testEnv(env)
	var out strings.Builder // one writer for both: exec writes it from one goroutine
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	// nginx's worker holds the output pipe too: Wait gives up on it
	// after WaitDelay, once the master is gone.
	cmd.WaitDelay = 2 * time.Second
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // nginx's master stops its workers
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, lastLines(out.String(), 20))
		}
	})
}

// TestGRPCThroughProxies: uploads and downloads over gRPC through nginx's
// grpc_pass and through HAProxy with h2 on both sides, two streams a
// connection, the server pausing one stream: every byte conserved from
// client to server; through nginx, which gives each client stream an
// upstream connection of its own, the fast stream reads on through the
// slow one's pause.
func TestGRPCThroughProxies(t *testing.T) {
	t.Parallel()
	const pauseAfter, pauseFor = 500 * time.Millisecond, 1500 * time.Millisecond
	for _, hop := range []string{"nginx", "haproxy"} {
		for _, dir := range []string{"up", "down"} {
			t.Run(hop+"/"+dir, func(t *testing.T) {
				t.Parallel()
				srv := startServer(t, "--sample-interval", "0", "--log-interval", "250ms",
					"--pause-after", pauseAfter.String(), "--pause-for", pauseFor.String())
				listen := startGRPCHop(t, hop, srv.GRPCAddr)
				sum, code, stderr := runClient(t, "--target", "grpc://"+listen, "--direction", dir, "--streams", "2",
					"--slow-streams", "1", "--duration", "2500ms", "--payload-size", "16KiB", "--rate", "1000")
				if code != 0 || !sum.Completed {
					t.Fatalf("bp-client through %s: exit %d, completed %v; stderr:\n%s", hop, code, sum.Completed, lastLines(stderr, 10))
				}
				read, written := waitStreamTotals(t, srv, 2)
				if sum.BytesWritten != read || sum.BytesRead != written || sum.BytesAcked != sum.BytesWritten {
					t.Errorf("through %s: client wrote %d (acked %d) and read %d; server read %d and wrote %d",
						hop, sum.BytesWritten, sum.BytesAcked, sum.BytesRead, read, written)
				}
				if dir != "up" {
					return
				}
				slow := progressDuring(srv, 0, pauseAfter+pauseFor/4, pauseAfter+3*pauseFor/4)
				fast := progressDuring(srv, 1, pauseAfter+pauseFor/4, pauseAfter+3*pauseFor/4)
				t.Logf("through %s, mid-pause: slow stream read %d bytes, fast stream %d; client stalls %d, longest %.2fs",
					hop, slow, fast, sum.Stalls, sum.LongestStallSeconds)
				if slow != 0 {
					t.Errorf("through %s the paused stream read %d bytes mid-pause", hop, slow)
				}
				if hop == "nginx" && fast < 1<<20 {
					t.Errorf("through nginx the fast stream read only %d bytes beside the paused one", fast)
				}
			})
		}
	}
}
