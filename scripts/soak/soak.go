package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// options are the soak's flags.
type options struct {
	Duration time.Duration
	Interval time.Duration
	Bin      string
	Verbose  bool
}

// The server and relay run the public profile of docs/SAFETY.md, with
// limits small enough that the hostile peers reach them.
var (
	serverArgs = []string{"--max-connections", "200", "--max-http-connections", "100", "--hello-timeout", "2s",
		"--idle-timeout", "30s", "--ws-max-message", "1MiB", "--read-header-timeout", "5s", "--log-format", "json"}
	relayArgs = []string{"--max-connections", "200", "--max-http-connections", "100", "--hello-timeout", "2s",
		"--ws-max-message", "1MiB", "--read-header-timeout", "5s", "--buffer-max", "256MiB", "--log-format", "json"}
)

// hop is a running bp-server or bp-relay.
type hop struct {
	name     string
	cmd      *exec.Cmd
	log      string // its stderr, a file
	done     chan struct{}
	httpAddr string
	tcpAddr  string
}

func (h *hop) exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// metricsURL is where its /metrics is.
func (h *hop) metricsURL() string { return "http://" + h.httpAddr + "/metrics" }

// run builds (unless o.Bin), starts the server and the relay, runs the
// peers for o.Duration while sampling, lets the peers go, samples once
// more after they are gone, and stops both.
func run(ctx context.Context, o options, log io.Writer) (*Result, error) {
	dir, err := os.MkdirTemp("", "bp-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if o.Bin == "" {
		o.Bin = filepath.Join(dir, "bin")
		fmt.Fprintln(log, "soak: building bp-server, bp-client, bp-relay")
		build := exec.CommandContext(ctx, "go", "build", "-o", o.Bin+"/", "./cmd/bp-server", "./cmd/bp-client", "./cmd/bp-relay")
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build: %v\n%s", err, out)
		}
	}
	srv, err := startHop(ctx, dir, o.Bin, "bp-server", serverArgs)
	if err != nil {
		return nil, err
	}
	defer stopHop(srv)
	relay, err := startHop(ctx, dir, o.Bin, "bp-relay", append([]string{"--upstream", "tcp://" + srv.tcpAddr}, relayArgs...))
	if err != nil {
		return nil, err
	}
	defer stopHop(relay)

	res := newResult(o, srv, relay)
	res.sample(ctx, "start")
	fmt.Fprintf(log, "soak: %s of good and hostile peers against bp-server (pid %d) and bp-relay (pid %d), sampled every %s\n",
		o.Duration, srv.cmd.Process.Pid, relay.cmd.Process.Pid, o.Interval)
	loadCtx, stop := context.WithTimeout(ctx, o.Duration)
	defer stop()
	var peers sync.WaitGroup
	startPeers(loadCtx, &peers, o, res, srv, relay)
	tick := time.NewTicker(o.Interval)
	for done := false; !done; {
		select {
		case <-loadCtx.Done():
			done = true
		case <-tick.C:
			s := res.sample(ctx, "load")
			if o.Verbose {
				fmt.Fprintln(log, "soak:", s)
			}
		}
	}
	tick.Stop()
	peers.Wait()
	if ctx.Err() != nil {
		res.finish(srv, relay)
		return res, ctx.Err()
	}
	res.settle(ctx)
	res.sample(ctx, "end")
	res.finish(srv, relay)
	return res, nil
}

// startHop starts bin/name on free loopback ports with args and waits
// for its /healthz.
func startHop(ctx context.Context, dir, bin, name string, args []string) (*hop, error) {
	h := &hop{name: name, httpAddr: freeAddr(), tcpAddr: freeAddr(), log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(h.log)
	if err != nil {
		return nil, err
	}
	base := []string{"--http-addr", h.httpAddr, "--tcp-addr", h.tcpAddr}
	if name == "bp-server" {
		base = append(base, "--grpc-addr", "") // the soak runs no gRPC
	}
	h.cmd = exec.Command(filepath.Join(bin, name), append(base, args...)...)
	h.cmd.Stdout, h.cmd.Stderr = f, f
	if err := h.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { h.cmd.Wait(); f.Close(); close(h.done) }()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := healthz(ctx, h.httpAddr); err == nil {
			return h, nil
		}
		if h.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			b, _ := os.ReadFile(h.log)
			stopHop(h)
			return nil, fmt.Errorf("%s did not come up: %s", name, lastLines(string(b), 5))
		}
	}
}

// stopHop sends SIGTERM, and SIGKILL after 10 s.
func stopHop(h *hop) {
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		h.cmd.Process.Kill()
		<-h.done
	}
}

// healthz is nil when GET /healthz on addr answers 200 within 2 s.
func healthz(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], " | ")
}
