package e2e

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/lab"
	"github.com/go-backpressure/go-backpressure/internal/netlab"
)

// needPaths skips the host profiles without root or iproute2 (in CI,
// where both are there, it fails instead).
func needPaths(t *testing.T, p lab.Profile) {
	t.Helper()
	for _, tool := range []string{"ip", "tc", "ss"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed (iproute2)", tool)
			}
			t.Skipf("%s is not installed (iproute2)", tool)
		}
	}
	needLabProfile(t, p)
}

// TestPathProfiles: on wan-direct and wan-haproxy, with the server paused,
// the kernel's round trip on every link is within 10% of the setting, the
// byte map closes within one write plus the links' bytes in flight, the
// hosts are gone after the run, and on wan-haproxy the client's verdict
// is blocked with absorbed bytes within 20% of the byte map's sum.
func TestPathProfiles(t *testing.T) {
	t.Parallel()
	// 80 writes of 64 KiB a second, 42 Mbit/s: below every link's rate,
	// so the round trip the kernel sees while the path flows is the
	// links' delay, not a queue behind a saturated link (the delay line
	// at full rate on a busy 2-core machine queues too).
	server := []string{"--pause-after", "1s", "--pause-for", "3s", "--rcvbuf", "256KiB"}
	client := []string{"--duration", "2500ms", "--rate", "80", "--sndbuf", "256KiB"}
	for _, name := range []string{"wan-direct", "wan-haproxy"} {
		p, _ := lab.Lookup(name)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			needPaths(t, p)
			res := runLab(t, p, server, client)
			checkRTT(t, res)
			m := res.ByteMap
			if m == nil {
				t.Fatalf("no byte map; client: %+v", res.Client)
			}
			if !m.Closes || m.Moment != "first_block" {
				t.Errorf("moment %s: %s", m.Moment, m.ClosingLine())
			}
			if limit := float64(res.Client.PayloadSize) + m.InFlightBytes + 4096; math.Abs(m.ClosingErrorBytes) > limit {
				t.Errorf("closing error %.0f bytes, more than one write and the bytes in flight (%.0f)", m.ClosingErrorBytes, limit)
			}
			t.Logf("%s: %s; %s", name, m.ClosingLine(), m.Verdict())
			if name == "wan-haproxy" {
				checkBlocked(t, res)
			}
			checkGone(t, res.Hosts)
		})
	}
}

// checkRTT: each link's round trip, as the sender's kernel measured it
// (its floor, and the least smoothed value), is within 10% of the
// setting; the median, which queueing behind the link's rate raises, is
// only logged.
func checkRTT(t *testing.T, res *lab.Result) {
	t.Helper()
	if len(res.Links) == 0 {
		t.Fatal("no links measured")
	}
	for _, l := range res.Links {
		t.Logf("%s: asked %.2f ms; min_rtt %.2f ms, least rtt %.2f ms, median %.2f ms (%d samples); most in flight %.0f bytes",
			l.Setting, l.AskedRTTMs, l.MinRTTMs, l.RTTMinMs, l.RTTMedianMs, l.Samples, l.MaxInFlightBytes)
		// Below a millisecond, 10% is under the timer resolution of a
		// user space delay line: allow 0.2 ms there.
		tol := math.Max(0.1*l.AskedRTTMs, math.Min(0.2, l.AskedRTTMs))
		for what, v := range map[string]float64{"min_rtt": l.MinRTTMs, "least rtt": l.RTTMinMs} {
			if l.AskedRTTMs >= 1 && math.Abs(v-l.AskedRTTMs) > tol {
				t.Errorf("%s: %s %.2f ms, asked %.2f ms (tolerance %.2f)", l.Name, what, v, l.AskedRTTMs, tol)
			}
		}
		if l.AskedRTTMs < 1 && math.Abs(l.MinRTTMs-l.AskedRTTMs) > tol {
			t.Errorf("%s: min_rtt %.2f ms, asked %.2f ms (tolerance %.2f)", l.Name, l.MinRTTMs, l.AskedRTTMs, tol)
		}
	}
}

// checkBlocked: the client's own verdict, from its acks alone, says the
// stop reached it, with the path's absorbed bytes near the byte map's sum.
func checkBlocked(t *testing.T, res *lab.Result) {
	t.Helper()
	v := res.Client.Verdict
	if v == nil || v.Outcome != "blocked" || v.AbsorbedBytes == nil {
		t.Fatalf("client verdict %+v, want blocked with absorbed bytes", v)
	}
	sum := res.ByteMap.TotalBytes
	if d := math.Abs(float64(*v.AbsorbedBytes) - sum); d > 0.2*sum {
		t.Errorf("verdict absorbed %d bytes, byte map sum %.0f: more than 20%% apart", *v.AbsorbedBytes, sum)
	}
	t.Logf("verdict %s: absorbed %d bytes; byte map %.0f", v.Outcome, *v.AbsorbedBytes, sum)
}

// checkGone: no namespace of the hosts is left, no veth or TUN of the lab
// in the machine's own namespace, and nothing runs in them.
func checkGone(t *testing.T, hosts []netlab.Host) {
	t.Helper()
	if len(hosts) == 0 {
		t.Fatal("no hosts listed")
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, h := range hosts {
		if strings.Contains(string(out), h.Namespace) {
			t.Errorf("namespace %s left after the run", h.Namespace)
		}
	}
	links, _ := exec.Command("ip", "-o", "link").Output()
	for _, l := range strings.Split(string(links), "\n") {
		if f := strings.Fields(l); len(f) > 1 && (strings.HasPrefix(f[1], "to-") || strings.HasPrefix(f[1], "dl-")) {
			t.Errorf("interface left in the machine's namespace: %s", l)
		}
	}
}

// TestPathCleanupAfterKill: a lab killed with SIGKILL while its hosts are
// up leaves them; the next run removes them and what ran in them, and
// leaves nothing of its own.
func TestPathCleanupAfterKill(t *testing.T) {
	p, _ := lab.Lookup("wan-direct")
	needPaths(t, p)
	labBin := filepath.Join(t.TempDir(), "lab")
	build := exec.Command("go", "build", "-o", labBin, "./scripts/lab")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build scripts/lab: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, labBin, "-quiet", "-client", "--duration 30s", "wan-direct")
	cmd.Dir = ".."
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	prefix := netlab.Prefix + strconv.Itoa(cmd.Process.Pid) + "-"
	var left []string
	var pids []string
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) && len(pids) < 2 {
		left, pids = ofRun(prefix)
		time.Sleep(200 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if len(left) == 0 || len(pids) < 2 {
		t.Fatalf("the killed lab had namespaces %v running %v: want its hosts and both ends", left, pids)
	}
	if now, _ := ofRun(prefix); len(now) == 0 {
		t.Fatalf("nothing left by the killed lab: the test shows nothing")
	}
	res := runLab(t, p, []string{"--pause-after", "200ms", "--pause-for", "500ms"}, []string{"--duration", "1s"})
	if now, _ := ofRun(prefix); len(now) > 0 {
		t.Errorf("left by the killed lab after the next run: %v", now)
	}
	for _, pid := range pids {
		if b, err := os.ReadFile("/proc/" + pid + "/status"); err == nil && !strings.Contains(string(b), "State:\tZ") {
			t.Errorf("process %s of the killed lab still runs", pid)
		}
	}
	checkGone(t, res.Hosts)
}

// ofRun lists the namespaces with the prefix and the pids running in them.
func ofRun(prefix string) (namespaces, pids []string) {
	for _, ns := range netlab.List() {
		if strings.HasPrefix(ns, prefix) {
			namespaces = append(namespaces, ns)
			out, _ := exec.Command("ip", "netns", "pids", ns).Output()
			pids = append(pids, strings.Fields(string(out))...)
		}
	}
	return namespaces, pids
}
