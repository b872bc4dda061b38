package e2e

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
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
	"github.com/go-backpressure/go-backpressure/pkg/report"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
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

// TestPathProfiles: on wan-direct, wan-haproxy and wan-router, with the
// server paused,
// the kernel's round trip on every link is within 10% of the setting, the
// byte map closes within one write plus the links' bytes in flight, each
// host's counters are its own (as nstat in its namespace reads them, and
// as its role says), the hosts are gone after the run, and on wan-haproxy
// the client's verdict is blocked with absorbed bytes within 20% of the
// byte map's sum; the verdict's addresses are the lab hosts' (the client's,
// and the one the server sees: HAProxy's or Caddy's host, the client's own
// on wan-direct).
//
// The host tests are not parallel with the package's other tests: the
// delay lines run in the test's process, and host profiles beside the
// loopback ones on two cores would delay packets late and slow the
// others' timing-sensitive runs.
func TestPathProfiles(t *testing.T) {
	// 80 writes of 64 KiB a second, 42 Mbit/s: below every link's rate,
	// so the round trip the kernel sees while the path flows is the
	// links' delay, not a queue behind a saturated link (the delay line
	// at full rate on a busy 2-core machine queues too).
	server := []string{"--pause-after", "1s", "--pause-for", "3s", "--rcvbuf", "256KiB"}
	client := []string{"--duration", "2500ms", "--payload-size", "64KiB", "--rate", "80", "--sndbuf", "256KiB"}
	for _, name := range []string{"wan-direct", "wan-haproxy", "wan-router"} {
		p, _ := lab.Lookup(name)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			needPaths(t, p)
			res := runLabBounded(t, p, server, client)
			// On a loaded machine the delay lines (in this process) ran
			// far behind in CI: a median round trip of 151 ms on the 20 ms
			// link; no round trip under 14 ms on the 0.5 ms link; on
			// wan-router a floor of 25.2 ms on the 20 ms link, every
			// round trip 5 ms late (its median 103 ms). The path was not
			// the profile's: the kernel's round trips were off the
			// setting, or the verdict's absorbed bytes and the byte map's
			// sum came apart (1.8 against 2.7 MB, 1.6 against 2.3). Such a
			// run is run again, at most three in all (lateLinks); a link
			// off its setting, or a disagreement, on a path that kept its
			// timing fails, and so does one late three times.
			for attempt := 1; attempt < 3 && lateLinks(res) != "" && timingFails(name, res); attempt++ {
				t.Logf("attempt %d: the delay lines ran late (%s) and the run's timing checks fail (%s): run again",
					attempt, lateLinks(res), strings.Join(timingProblems(name, res), "; "))
				res = runLabBounded(t, p, server, client)
			}
			checkRTT(t, res)
			m := res.ByteMap
			if m == nil {
				t.Fatalf("no byte map; client: %+v", res.Client)
			}
			// wan-router's Caddy host may absorb the short run on a loaded
			// machine (then the map is of the stall's peak); the others block.
			if !m.Closes || (m.Moment != "first_block" && name != "wan-router") {
				t.Errorf("moment %s: %s", m.Moment, m.ClosingLine())
			}
			if limit := float64(res.Client.PayloadSize) + m.InFlightBytes + 4096; math.Abs(m.ClosingErrorBytes) > limit {
				t.Errorf("closing error %.0f bytes, more than one write and the bytes in flight (%.0f)", m.ClosingErrorBytes, limit)
			}
			t.Logf("%s: %s; %s", name, m.ClosingLine(), m.Verdict())
			if name == "wan-haproxy" {
				checkBlocked(t, res)
			}
			if name == "wan-router" {
				checkRouterTLS(t, res)
			}
			checkPeerSeenLab(t, res)
			checkHostCounters(t, res.Hosts, &res.Client)
			checkGone(t, res.Hosts)
		})
	}
}

// checkPeerSeenLab: the addresses in the client's verdict are the lab's
// own: the client host's on its link, and, as the server sees the
// connection, the address of the host on the server's link, HAProxy's or
// Caddy's host where one sits in between (then the verdict says a hop
// that did not name itself), the client's own on wan-direct (then it says
// the peer is the server).
func checkPeerSeenLab(t *testing.T, res *lab.Result) {
	t.Helper()
	v := res.Client.Verdict
	if v == nil {
		t.Fatal("no client verdict")
	}
	front := ""
	for _, h := range res.Hosts {
		for _, i := range h.Interfaces {
			if i.Peer == "server" {
				front = strings.Split(i.Address, "/")[0]
			}
		}
	}
	hop := front != hostAddr(res.Hosts, "client")
	seen, errSeen := netip.ParseAddrPort(v.SeenFrom)
	local, errLocal := netip.ParseAddrPort(v.LocalAddr)
	if errSeen != nil || errLocal != nil || local.Addr().String() != hostAddr(res.Hosts, "client") || seen.Addr().String() != front {
		t.Errorf("seen_from %q, local_addr %q; want the client host's %s and, as the server sees it, %s (the host on the server's link)",
			v.SeenFrom, v.LocalAddr, hostAddr(res.Hosts, "client"), front)
	}
	if v.AddressRewritten == nil || *v.AddressRewritten != hop {
		t.Errorf("address_rewritten %v, want %v; peer: %s", deref(v.AddressRewritten), hop, v.PeerWords())
	}
	t.Logf("peer: %s", v.PeerWords())
}

// checkNetstatNstat: each host's counters as the lab read them (its own
// /proc/net/netstat and snmp, read inside its namespace once they stopped
// moving) are what nstat inside that namespace reads, every counter both
// have; and they are the host's own, not the machine's namespace's.
func checkNetstatNstat(t *testing.T, hosts []netlab.Host) {
	t.Helper()
	own := nstat(t, "")
	for _, h := range hosts {
		if len(h.Netstat) < 100 {
			t.Errorf("host %s: %d counters read by the lab", h.Name, len(h.Netstat))
			continue
		}
		theirs, compared := nstat(t, h.Namespace), 0
		for k, v := range h.Netstat {
			if n, ok := theirs[k]; ok {
				compared++
				if n != uint64(v) {
					t.Errorf("host %s: %s lab %d, nstat %d", h.Name, k, v, n)
				}
			}
		}
		if compared < 100 {
			t.Errorf("host %s: only %d counters in both the lab's reading and nstat's", h.Name, compared)
		}
		if uint64(h.Netstat["IpExtInOctets"]) == own["IpExtInOctets"] {
			t.Errorf("host %s: IpExtInOctets %d, the machine's own: not the host's counters", h.Name, h.Netstat["IpExtInOctets"])
		}
	}
}

// nstat reads every counter with nstat (absolute values, history file not
// touched), inside the namespace ns or, with "", in the test's own.
func nstat(t *testing.T, ns string) map[string]uint64 {
	t.Helper()
	args := []string{"nstat", "-asz"}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	out, err := exec.Command(args[0], args[1:]...).Output()
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	m := map[string]uint64{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
			if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				m[f[0]] = v
			}
		}
	}
	return m
}

// checkHostCounters: the hosts' counters differ as their roles do: the
// server's host advertised a zero window whenever the client saw its
// peer's window shut (its sampled peer_window_zero_seconds: the server's
// window on wan-direct; a hop's, which stops reading only when its own
// upstream writes wait on the server's window, behind one); the client's host,
// which only receives acks, never did; the client's host, which sends the
// upload's data, sent more segments than the server's host, which acks
// it; and no two hosts sent the same number of segments. The server's
// pause shuts the window in almost every run, but not in all: on a loaded
// machine the delay line releases late packets in bursts that the link's
// shallow queue drops, and a client in retransmission back-off may not
// deliver a window's worth before the pause ends (a CI run: 262 segments
// retransmitted, no zero window seen at either end). A zero window the
// server's host counted but the client's 100 ms sampling missed is no
// error, so only that direction is checked.
func checkHostCounters(t *testing.T, hosts []netlab.Host, client *report.Summary) {
	t.Helper()
	clientZero := 0.0
	if client.PeerWindowZeroSeconds != nil {
		clientZero = *client.PeerWindowZeroSeconds
	}
	segs := map[int64]string{}
	var clientSegs, serverSegs int64
	for _, h := range hosts {
		zero := h.Netstat["TcpExtTCPToZeroWindowAdv"]
		switch {
		case h.Name == "server" && zero == 0 && clientZero > 0:
			t.Errorf("server host: no zero window advertised (TcpExtTCPToZeroWindowAdv 0), though the client saw its peer's window shut for %.2f s", clientZero)
		case h.Name == "server" && zero == 0:
			t.Logf("server host: no zero window advertised, and the client saw none (peer_window_zero_seconds 0): the window did not close in this run")
		case h.Name == "client" && zero != 0:
			t.Errorf("client host: %d zero windows advertised, want 0", zero)
		}
		out := h.Netstat["TcpOutSegs"]
		if h.Name == "client" {
			clientSegs = out
		}
		if h.Name == "server" {
			serverSegs = out
		}
		if other, ok := segs[out]; ok {
			t.Errorf("hosts %s and %s both sent %d segments: the same counters?", other, h.Name, out)
		}
		segs[out] = h.Name
		t.Logf("host %s: TcpExtTCPToZeroWindowAdv %d, TcpOutSegs %d, TcpRetransSegs %d", h.Name, zero, out, h.Netstat["TcpRetransSegs"])
	}
	if clientSegs <= serverSegs {
		t.Errorf("the client's host sent %d segments, the server's %d: an upload's sender should send more than the host that acks it", clientSegs, serverSegs)
	}
	t.Logf("the client saw its peer's window shut for %.2f s", clientZero)
}

// checkRouterTLS: the client reached the router host over wss:// and
// Caddy terminated TLS: the client moved its bytes, and Caddy's access log
// logs the upgrade request with its TLS fields (version, cipher suite),
// which it writes only for a request that came over TLS.
func checkRouterTLS(t *testing.T, res *lab.Result) {
	t.Helper()
	if !strings.HasPrefix(res.Target, "wss://") {
		t.Errorf("wan-router's target %s, want wss://", res.Target)
	}
	if res.Client.BytesAcked == 0 || res.Client.FailedConns != 0 {
		t.Errorf("over wss: %d bytes acknowledged, %d connections failed (%s)", res.Client.BytesAcked, res.Client.FailedConns, res.Client.Error)
	}
	b, err := os.ReadFile(filepath.Join(res.Dir, "caddy-access.log"))
	if err != nil {
		t.Fatalf("caddy's access log: %v", err)
	}
	if !strings.Contains(string(b), `"tls":{`) {
		t.Errorf("caddy's access log shows no TLS request: %s", b)
	}
}

// checkRTT: each link's round trip as the sender's kernel measured it
// (rttProblems), and the samples logged.
func checkRTT(t *testing.T, res *lab.Result) {
	t.Helper()
	if len(res.Links) == 0 {
		t.Fatal("no links measured")
	}
	for _, l := range res.Links {
		t.Logf("%s: asked %.2f ms; min_rtt %.2f ms, least rtt %.2f ms, median %.2f ms (%d samples); most in flight %.0f bytes",
			l.Setting, l.AskedRTTMs, l.MinRTTMs, l.RTTMinMs, l.RTTMedianMs, l.Samples, l.MaxInFlightBytes)
	}
	for _, p := range rttProblems(res) {
		t.Error(p)
	}
}

// rttProblems: each link's floor (tcpi_min_rtt) within 10% of the setting
// (0.5 ms below 5 ms: a user space delay line's wake-ups on a loaded
// machine), and the least smoothed tcpi_rtt within 25% for links of 5 ms
// and more: on a busy 2-core machine the delay line's goroutines are
// sometimes scheduled late, and the smoothed value carries that and any
// queue behind tbf. The median is only logged.
func rttProblems(res *lab.Result) []string {
	var out []string
	for _, l := range res.Links {
		// A floor of 0.5 ms for the sub-millisecond links. The race
		// detector slows the delay line, which runs in this process, by
		// about a millisecond a round trip whatever the link's delay (a
		// make test run saw 22.28 ms on a 20 ms link): 1 ms more then.
		tol := math.Max(0.1*l.AskedRTTMs, 0.5)
		if raceEnabled {
			tol++
		}
		if math.Abs(l.MinRTTMs-l.AskedRTTMs) > tol {
			out = append(out, fmt.Sprintf("%s: min_rtt %.2f ms, asked %.2f ms (tolerance %.2f)", l.Name, l.MinRTTMs, l.AskedRTTMs, tol))
		}
		// Below 5 ms the smoothed value is the delay line's wake-up
		// latency on a loaded machine more than the link: floor only. Under
		// the race detector the delay line (in this process) runs several
		// times slower and queues: min_rtt only.
		if tol := 0.25 * l.AskedRTTMs; !raceEnabled && l.AskedRTTMs >= 5 && math.Abs(l.RTTMinMs-l.AskedRTTMs) > tol {
			out = append(out, fmt.Sprintf("%s: least smoothed rtt %.2f ms, asked %.2f ms (tolerance %.2f)", l.Name, l.RTTMinMs, l.AskedRTTMs, tol))
		}
	}
	return out
}

// timingProblems are the checks of a run that a late delay line can
// fail: the links' round trips, and on wan-haproxy the verdict's absorbed
// bytes against the byte map's sum (checkBlocked).
func timingProblems(name string, res *lab.Result) []string {
	out := rttProblems(res)
	if name == "wan-haproxy" && !absorbedAgrees(res) {
		out = append(out, "the verdict's absorbed bytes and the byte map's sum disagree")
	}
	return out
}

// timingFails: a timing check of the run fails.
func timingFails(name string, res *lab.Result) bool { return len(timingProblems(name, res)) > 0 }

// lateLinks names the links whose delay line ran far behind its packets
// ("" when none): a least smoothed round trip over 10 ms above the setting
// (quiet runs, under the race detector too, stay within 3.2 ms of it on
// both links; a failed CI run had 15.5 ms over on the 20 ms link and 13.6
// on the 0.5 ms one, all run long), or, on a link of 5 ms or more, a
// median over four times the setting. The median takes in the queue a
// full path builds (in quiet runs 2.4 times the 20 ms link's setting; the
// sub-millisecond links' run to 40 times), so only a much later one
// counts.
func lateLinks(res *lab.Result) string {
	var late []string
	for _, l := range res.Links {
		switch {
		case l.RTTMinMs-l.AskedRTTMs > 10:
			late = append(late, fmt.Sprintf("%s least rtt %.1f ms for %.1f", l.Setting, l.RTTMinMs, l.AskedRTTMs))
		case l.AskedRTTMs >= 5 && l.RTTMedianMs > 4*l.AskedRTTMs:
			late = append(late, fmt.Sprintf("%s median %.1f ms for %.1f", l.Setting, l.RTTMedianMs, l.AskedRTTMs))
		}
	}
	return strings.Join(late, ", ")
}

// absorbedAgrees: checkBlocked would pass.
func absorbedAgrees(res *lab.Result) bool {
	v := res.Client.Verdict
	if v == nil || v.Outcome != "blocked" || v.AbsorbedBytes == nil || res.ByteMap == nil {
		return false
	}
	sum := res.ByteMap.TotalBytes
	return math.Abs(float64(*v.AbsorbedBytes)-sum) <= 0.2*sum
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

// TestPathCleanupAfterKill: a lab interrupted (Ctrl-C) while its hosts
// are up removes them; a lab killed with SIGKILL leaves them, and the next
// run removes them and what ran in them, and leaves nothing of its own.
func TestPathCleanupAfterKill(t *testing.T) {
	p, _ := lab.Lookup("wan-direct")
	needPaths(t, p)
	labBin := filepath.Join(t.TempDir(), "lab")
	build := exec.Command("go", "build", "-o", labBin, "./scripts/lab")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build scripts/lab: %v\n%s", err, out)
	}
	prefix, _ := labWithHostsUp(t, labBin, syscall.SIGINT)
	deadline := time.Now().Add(15 * time.Second)
	for now, _ := ofRun(prefix); len(now) > 0 && time.Now().Before(deadline); now, _ = ofRun(prefix) {
		time.Sleep(200 * time.Millisecond)
	}
	if now, _ := ofRun(prefix); len(now) > 0 {
		t.Errorf("left by the interrupted lab: %v", now)
	}
	prefix, pids := labWithHostsUp(t, labBin, syscall.SIGKILL)
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

// labWithHostsUp starts scripts/lab on wan-direct, waits until its hosts
// run both ends, sends it sig and returns its namespaces' prefix and the
// pids that ran in them.
func labWithHostsUp(t *testing.T, labBin string, sig syscall.Signal) (string, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, labBin, "-quiet", "-client", "--duration 30s", "wan-direct")
	cmd.Dir = ".."
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	prefix := netlab.Prefix + strconv.Itoa(cmd.Process.Pid) + "-"
	var left, pids []string
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) && len(pids) < 2 {
		left, pids = ofRun(prefix)
		time.Sleep(200 * time.Millisecond)
	}
	cmd.Process.Signal(sig)
	cmd.Wait()
	if len(left) == 0 || len(pids) < 2 {
		t.Fatalf("the lab had namespaces %v running %v: want its hosts and both ends", left, pids)
	}
	return prefix, pids
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

// TestPathZeroWindowTshark: the client's zero-window seconds (its
// kernel's view, sampled) agree within max(0.3 s, 10%) with a tshark
// capture of the client's own link: the zero windows advertised to it, by
// the server on wan-direct, by HAProxy's host on wan-haproxy. The
// server's link is captured too. On wan-direct it is the same link seen
// from the other end and agrees as well. On wan-haproxy it is where the
// server advertised zero first: HAProxy's host follows once its queues
// are full and reopens only after the server reads again, so the server's
// link shows at least the client's time less the tolerance (0.3-0.4 s
// more: the time HAProxy's host took to fill).
func TestPathZeroWindowTshark(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tshark is not installed (scripts/install-test-deps)")
		}
		t.Skip("tshark is not installed (scripts/install-test-deps)")
	}
	for _, name := range []string{"wan-direct", "wan-haproxy"} {
		t.Run(name, func(t *testing.T) {
			p, _ := lab.Lookup(name)
			needPaths(t, p)
			// Two tries: on a loaded machine a capture can come out short;
			// a second disagreement fails.
			for try := 1; ; try++ {
				own, client, server := zeroWindowTry(t, p)
				tol := math.Max(0.3, 0.1*own)
				ok := math.Abs(own-client) <= tol && server >= own-tol
				if name == "wan-direct" {
					ok = ok && math.Abs(own-server) <= tol
				}
				t.Logf("try %d: zero window: client %.3f s; tshark on the client's link %.3f s, on the server's link %.3f s",
					try, own, client, server)
				if ok {
					return
				}
				if try == 2 {
					t.Fatalf("zero window: client %.3f s, captures %.3f s (client's link) and %.3f s (server's link): more than max(0.3 s, 10%%) apart",
						own, client, server)
				}
			}
		})
	}
}

// zeroWindowTry runs the profile once with captures on the client's and
// the server's interfaces, and returns the client's zero-window seconds,
// the time the client's peer advertised a zero window on the client's
// link, and the time the server advertised one on its link.
func zeroWindowTry(t *testing.T, p lab.Profile) (own, clientLink, serverLink float64) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"client": filepath.Join(dir, "client.pcapng"), "server": filepath.Join(dir, "server.pcapng")}
	var watchErr error
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var hosts []netlab.Host
	res, err := lab.Run(ctx, p, lab.Options{Bin: binDir, Deploy: labDeploy, LineBin: binary("delayline"),
		Server:  []string{"--pause-after", "1s", "--pause-for", "2s", "--rcvbuf", "256KiB"},
		Client:  []string{"--duration", "2500ms", "--payload-size", "64KiB", "--rate", "80", "--sndbuf", "256KiB"},
		TCPRmem: []string{"all=4096,131072,1048576"}, TCPWmem: []string{"all=4096,131072,1048576"},
		Watch: func(hs []netlab.Host) func() {
			hosts = hs
			var stops []func()
			for _, host := range []string{"client", "server"} {
				stop, err := startCapture(ctx, hs, host, files[host])
				watchErr = errors.Join(watchErr, err)
				stops = append(stops, stop)
			}
			return func() {
				for _, stop := range stops {
					stop()
				}
			}
		}})
	if err != nil || watchErr != nil {
		t.Fatalf("lab: %v; capture: %v", err, watchErr)
	}
	if res.Client.PeerWindowZeroSeconds == nil {
		t.Fatal("the client's report has no zero-window seconds")
	}
	clientLink = zeroWindowSeconds(t, files["client"], peerAddr(hosts, "client"))
	serverLink = zeroWindowSeconds(t, files["server"], hostAddr(hosts, "server"))
	return *res.Client.PeerWindowZeroSeconds, clientLink, serverLink
}

// hostAddr is the host's address on its first interface; peerAddr the
// address of the host at that interface's other end.
func hostAddr(hosts []netlab.Host, name string) string {
	for _, h := range hosts {
		if h.Name == name && len(h.Interfaces) > 0 {
			return strings.Split(h.Interfaces[0].Address, "/")[0]
		}
	}
	return ""
}

func peerAddr(hosts []netlab.Host, name string) string {
	for _, h := range hosts {
		if h.Name == name && len(h.Interfaces) > 0 {
			peer := h.Interfaces[0].Peer
			for _, p := range hosts {
				for _, i := range p.Interfaces {
					if p.Name == peer && i.Peer == name {
						return strings.Split(i.Address, "/")[0]
					}
				}
			}
		}
	}
	return ""
}

// captureFlush is how long a capture goes on after the run, so that its
// last packets reach the file (see startCapture).
const captureFlush = 500 * time.Millisecond

// startCapture runs tshark on the host's first interface, inside its
// namespace, until the returned stop; it returns once tshark captures.
func startCapture(ctx context.Context, hosts []netlab.Host, host, file string) (func(), error) {
	var ns, dev string
	for _, h := range hosts {
		if h.Name == host && len(h.Interfaces) > 0 {
			ns, dev = h.Namespace, h.Interfaces[0].Name
		}
	}
	return runCapture(ctx, "ip", "netns", "exec", ns, "tshark", "-i", dev, "-s", "128", "-f", "tcp", "-w", file)
}

// runCapture starts a capture (tshark, run by the command and args)
// until the returned stop; it returns once tshark captures.
func runCapture(ctx context.Context, command string, args ...string) (func(), error) {
	cmd := exec.CommandContext(ctx, command, args...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return func() {}, err
	}
	ready := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		var seen string
		told := false
		for {
			n, err := stderr.Read(buf)
			seen += string(buf[:n])
			if strings.Contains(seen, "Capturing on") && !told {
				close(ready)
				told = true
			}
			if err != nil {
				return
			}
		}
	}()
	stop := func() {
		// dumpcap gets packets from the kernel's capture ring a block at
		// a time: a block is handed over when full or 250 ms after its
		// first packet (libpcap's timeout), and one not yet handed over
		// when SIGINT comes is lost. On a quiet path the last packets
		// are few (the window reopening, the fin), so stopping at once
		// lost them, and the last zero window seemed to end when the
		// capture did (0.8 s on wan-haproxy's client link against the
		// client's 1.5 s). Half a second more keeps them.
		time.Sleep(captureFlush)
		cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	select {
	case <-ready:
		return stop, nil
	case <-time.After(15 * time.Second):
		stop()
		return func() {}, context.DeadlineExceeded
	}
}

// zeroWindowSeconds reads the capture: the time from each segment from
// src (an address) that advertised a zero window to the next one of its
// TCP stream that did not, summed over the streams (a health check's
// segments are not the data connection's).
func zeroWindowSeconds(t *testing.T, file, src string) float64 {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-Y", "ip.src == "+src,
		"-T", "fields", "-e", "frame.time_relative", "-e", "tcp.stream", "-e", "tcp.window_size").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v", err)
	}
	total, last := 0.0, 0.0
	start := map[string]float64{} // the streams at zero: since when
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		at, _ := strconv.ParseFloat(f[0], 64)
		win, _ := strconv.ParseFloat(f[2], 64)
		last = at
		since, zero := start[f[1]]
		switch {
		case win == 0 && !zero:
			start[f[1]] = at
		case win > 0 && zero:
			total += at - since
			delete(start, f[1])
		}
	}
	for _, since := range start {
		total += last - since
	}
	return total
}

// TestPathTwoLBsAbsorbed: behind a long link, two load balancers whose
// hosts start their sockets' queues at 1 MiB and let them grow to 32 MiB
// (tcp_rmem, tcp_wmem) make a large buffering path (from 128 KiB, the
// hosts' autotuning had to keep pace with the pause: beside the whole
// suite it once did not, and the client blocked after 160 kB, truly):
// a client that writes 5 MB in a second while the
// server stops for 3 s never blocks, its verdict is absorbed, and in the
// byte map of the stall's peak the two hosts hold most of it.
func TestPathTwoLBsAbsorbed(t *testing.T) {
	p, _ := lab.Lookup("wan-two-lbs")
	needPaths(t, p)
	// A write can block on this path with the peer's window open: the
	// link, not the server, kept the bytes back. Beside a busy loop and
	// the whole suite the delay lines ran late, and the client blocked
	// 0.23 s into the pause with 374 kB beyond its socket, no zero window
	// seen: a run of a slower path than the profile's, run again (at most
	// three in all). A block with the window shut is the hosts' buffers
	// filling, which this test is for, and fails at once.
	var res *lab.Result
	var v *verdict.Verdict
	for attempt := 1; ; attempt++ {
		res = runTwoLBsAbsorbed(t, p)
		v = res.Client.Verdict
		if v == nil || v.Outcome != "blocked" || v.PeerWindowClosedAtSeconds != nil || attempt == 3 {
			break
		}
		for _, l := range res.Links {
			t.Logf("%s: min_rtt %.2f ms, least rtt %.2f ms, median %.2f ms", l.Setting, l.MinRTTMs, l.RTTMinMs, l.RTTMedianMs)
		}
		t.Logf("attempt %d: the client blocked with its peer's window open (the link kept the bytes back): %s", attempt, v.Summary)
	}
	if v == nil || v.Outcome != "absorbed" {
		t.Fatalf("client verdict %+v, want absorbed", v)
	}
	checkStopIsServers(t, res, *v, 0.3, 3)
	m := res.ByteMap
	if m == nil || m.Moment != "stall_peak" {
		t.Fatalf("byte map %+v, want one of the stall's peak", m)
	}
	// A stall's peak is not a standstill: bytes still move while the
	// samplers, each on its own 100 ms clock, read their queues, so on a
	// loaded machine the map may not close (it closed in every run alone;
	// once, beside the whole suite, it missed 1 MB of 3.5).
	if !m.Closes {
		t.Logf("the map of a moving path does not close: %s", m.ClosingLine())
	}
	held := map[string]float64{}
	for _, pc := range m.Pieces {
		held[pc.Hop] += pc.Bytes
	}
	// Which of the two holds more depends on how each host's autotuning
	// went; together they hold most of it.
	if lbs := held["nginx"] + held["haproxy"]; lbs < 0.5*m.TotalBytes {
		t.Errorf("held by hop %v: the load balancers' hosts hold %.0f of %.0f, want most", held, lbs, m.TotalBytes)
	}
	t.Logf("%s; %s; held %v", m.ClosingLine(), m.Verdict(), held)
	checkGone(t, res.Hosts)
}

// runTwoLBsAbsorbed is one run of TestPathTwoLBsAbsorbed's lab.
func runTwoLBsAbsorbed(t *testing.T, p lab.Profile) *lab.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	big := []string{"nginx=4096,1048576,33554432", "haproxy=4096,1048576,33554432"}
	res, err := lab.Run(ctx, p, lab.Options{Bin: binDir, Deploy: labDeploy, LineBin: binary("delayline"), TCPRmem: big, TCPWmem: big,
		Server: []string{"--pause-after", "300ms", "--pause-for", "3s", "--rcvbuf", "256KiB"},
		Client: []string{"--duration", "1s", "--payload-size", "64KiB", "--rate", "80", "--sndbuf", "256KiB"}})
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	return res
}

// TestPathTwoLBsLaterGap: wan-two-lbs whose LB hosts absorb the server's
// pause, then the client's link stands still for 0.8 s (tbf throttled to
// 8 kbit/s) while the server reads: a write blocks in a gap in the acks
// with little in the pipe. The verdict names the server's own pause as
// the stop, absorbed, and sets the later block aside (before, it named
// the gap as the stop and said blocked).
func TestPathTwoLBsLaterGap(t *testing.T) {
	p, _ := lab.Lookup("wan-two-lbs")
	needPaths(t, p)
	var res *lab.Result
	var v *verdict.Verdict
	// The LB hosts absorb the pause only if their windows opened in the
	// 0.3 s before it; on a loaded machine (twice in full CI-like runs) the
	// client's write blocked during the pause itself, 1.0 MB in, and the
	// verdict rightly said blocked: a run that tests nothing of the later
	// gap, run again. A verdict that named the gap (a block after the
	// server resumed) is not run again: that is the failure this test is
	// for.
	for attempt := 1; ; attempt++ {
		res = runLaterGap(t, p)
		v = res.Client.Verdict
		if v == nil || v.Outcome != "blocked" || v.WritesBlockedAtSeconds == nil || v.ServerResumedAtSeconds == nil ||
			*v.WritesBlockedAtSeconds >= *v.ServerResumedAtSeconds || attempt == 3 {
			break
		}
		t.Logf("attempt %d: the path did not absorb the pause (writes blocked at %.2f s, the server resumed at %.2f s): %s",
			attempt, *v.WritesBlockedAtSeconds, *v.ServerResumedAtSeconds, v.Summary)
	}
	if v == nil || v.Outcome != "absorbed" {
		t.Fatalf("client verdict %+v, want absorbed", v)
	}
	checkStopIsServers(t, res, *v, 0.3, 1.5)
	// The throttle must have blocked a write in a gap of its own, or this
	// test showed nothing.
	if res.Client.BlockedSeconds < 0.3 || v.Stalls < 2 {
		t.Fatalf("client blocked %.2f s, %d stalls: the throttle made no gap with a blocked write", res.Client.BlockedSeconds, v.Stalls)
	}
	// The block in the gap waited while no ack moved: stalled time, not
	// flowing, whichever stall the verdict names as the server's stop
	// (the throttle held the link still 0.8 s; before, a write that
	// returned before the stall was recorded counted as flowing).
	if v.WaitedStalledSeconds < 0.25 {
		t.Errorf("waited %.2f s stalled, %.2f s flowing: the write blocked in the throttled gap is not stalled time", v.WaitedStalledSeconds, v.WaitedFlowingSeconds)
	}
	if waited := v.WaitedFlowingSeconds + v.WaitedStalledSeconds; math.Abs(waited-res.Client.BlockedSeconds) > 0.01 {
		t.Errorf("waits %.3f s + %.3f s do not add up to the %.3f s blocked", v.WaitedFlowingSeconds, v.WaitedStalledSeconds, res.Client.BlockedSeconds)
	}
	if !strings.Contains(v.Summary, "the path had room, so not this stop's backpressure") {
		t.Errorf("summary does not set the later block aside: %s", v.Summary)
	}
	t.Logf("%s; waited %.3f s flowing, %.3f s stalled, of %.3f s blocked", v.Summary, v.WaitedFlowingSeconds, v.WaitedStalledSeconds, res.Client.BlockedSeconds)
}

// runLaterGap is one run of TestPathTwoLBsLaterGap's lab: the server's
// pause at 0.3 s for 1.5 s, the client's link throttled at 2.6 s for 0.8 s.
func runLaterGap(t *testing.T, p lab.Profile) *lab.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	big := []string{"nginx=4096,33554432,33554432", "haproxy=4096,33554432,33554432"}
	throttled := make(chan error, 1)
	res, err := lab.Run(ctx, p, lab.Options{Bin: binDir, Deploy: labDeploy, LineBin: binary("delayline"), TCPRmem: big,
		Server: []string{"--pause-after", "300ms", "--pause-for", "1500ms", "--rcvbuf", "256KiB"},
		Client: []string{"--duration", "4s", "--payload-size", "64KiB", "--rate", "80", "--sndbuf", "256KiB"},
		Watch: func(hs []netlab.Host) func() {
			go func() { throttled <- throttleClientLink(ctx, hs, 2600*time.Millisecond, 800*time.Millisecond) }()
			return func() {}
		}})
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	if err := <-throttled; err != nil {
		t.Fatalf("throttle the client's link: %v", err)
	}
	return res
}

// throttleClientLink waits for the client's host to run a process, then
// after after throttles the client-to-nginx wire to 8 kbit/s for d, and
// gives it back its 1 Gbit/s (netlab's tbf settings for it).
func throttleClientLink(ctx context.Context, hosts []netlab.Host, after, d time.Duration) error {
	var ns string
	for _, h := range hosts {
		if h.Name == "client" {
			ns = h.Namespace
		}
	}
	wire := strings.TrimSuffix(ns, "client") + "wire-client-nginx"
	for i := 0; ; i++ {
		out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
		if err == nil && len(strings.TrimSpace(string(out))) > 0 {
			break
		}
		if i == 600 {
			return errors.New("the client never started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(after)
	tbf := func(args ...string) error {
		cmd := append([]string{"netns", "exec", wire, "tc", "qdisc", "change", "dev", "to-nginx", "root", "tbf"}, args...)
		if out, err := exec.CommandContext(ctx, "ip", cmd...).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %w: %s", cmd, err, out)
		}
		return nil
	}
	if err := tbf("rate", "8kbit", "burst", "16384", "limit", "65536"); err != nil {
		return err
	}
	time.Sleep(d)
	return tbf("rate", "1000000000bit", "burst", "125000", "limit", "625000")
}

// checkStopIsServers holds the verdict's stop to the server's own pause
// schedule (once, after pauseAfter, for pauseFor seconds; its
// bp_read_paused_seconds_total): the stop the verdict names is the one
// the server made, not a later gap in the acks.
func checkStopIsServers(t *testing.T, res *lab.Result, v verdict.Verdict, pauseAfter, pauseFor float64) {
	t.Helper()
	paused := hopValue(t, res, "bp-server", "read_paused_seconds")
	if paused < 0.8*pauseFor || paused > pauseFor+0.5 {
		t.Errorf("server paused reading %.2f s, want about %.1f", paused, pauseFor)
	}
	if v.ServerStoppedAtSeconds == nil {
		t.Fatalf("verdict names no stop: %+v", v)
	}
	// One path latency late and an ack interval coarse, on a shared machine.
	stop := *v.ServerStoppedAtSeconds
	if stop < pauseAfter-0.1 || stop > pauseAfter+0.7 {
		t.Errorf("verdict's stop at %.2f s; the server paused %.1f s in: %s", stop, pauseAfter, v.Summary)
	}
	if r := v.ServerResumedAtSeconds; r != nil && math.Abs(*r-stop-paused) > 0.5 {
		t.Errorf("verdict's stall %.2f-%.2f s; the server paused %.2f s", stop, *r, paused)
	}
	t.Logf("verdict's stop %.2f s, the server's pause %.1f s in for %.2f s", stop, pauseAfter, paused)
}

// TestPathFleet: 3 client hosts × 20 connections → HAProxy → 2 server
// hosts that pause: every connection of every client host is served and
// counted, the bytes agree to the byte from the clients to the servers,
// and each host's own counters are its own (the servers' hosts advertised
// zero windows, the clients' did not).
func TestPathFleet(t *testing.T) {
	p, _ := lab.Lookup("wan-haproxy")
	needPaths(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := lab.Fleet{Clients: 3, Connections: 20, Servers: 2}
	const payload, count = 3001, 200
	// The servers' 16 KiB receive buffers fill within the 1 s pause even
	// when the delay lines (in this process) run late: a CI run with 64
	// KiB, its links slow under the other packages' tests (19 s where 10
	// is usual), saw no zero window on either server host. Beside two
	// busy loops here, 64 KiB gave 11 to 25 of them, 16 KiB 30 to 37.
	res, err := lab.RunFleet(ctx, f, lab.Options{Bin: binDir, Deploy: labDeploy, LineBin: binary("delayline"),
		Server: []string{"--pause-after", "300ms", "--pause-for", "1s", "--rcvbuf", "16KiB"},
		Client: []string{"--payload-size", "3001", "--count", "200", "--duration", "0", "--sndbuf", "64KiB"}})
	if err != nil {
		t.Fatalf("fleet: %v", err)
	}
	var written, read, served float64
	for _, c := range res.Clients {
		s := c.Client
		if !s.Completed || s.Connections != f.Connections || s.FailedConns != 0 || s.BytesAcked != s.BytesWritten ||
			s.BytesWritten != int64(f.Connections*payload*count) {
			t.Errorf("%s: completed %v (%s), %d connections (%d failed), written %d, acked %d",
				c.Host, s.Completed, s.Error, s.Connections, s.FailedConns, s.BytesWritten, s.BytesAcked)
		}
		if c.ZeroWindowAdv != 0 {
			t.Errorf("%s: its host advertised %.0f zero windows; only the servers' should", c.Host, c.ZeroWindowAdv)
		}
		written += float64(s.BytesWritten)
	}
	for _, s := range res.Servers {
		v, _ := s.Numbers.Value("bytes_read")
		read += v
		served += s.Connections
		if s.Connections == 0 || s.ZeroWindowAdv == 0 {
			t.Errorf("%s: %.0f connections, %.0f zero windows advertised by its host", s.Host, s.Connections, s.ZeroWindowAdv)
		}
	}
	if served != float64(f.Clients*f.Connections) || read != written {
		t.Errorf("servers served %.0f connections of %d and read %.0f bytes of %.0f written", served, f.Clients*f.Connections, read, written)
	}
	var b strings.Builder
	res.WriteText(&b)
	t.Logf("\n%s", b.String())
	checkGone(t, res.Hosts)
}

// runLabBounded runs a host profile with every host's TCP buffers capped
// at 1 MiB: Linux autotunes a hop's buffers up to tcp_rmem's maximum (32 MiB
// here), so the more the client writes during a pause the more the path
// absorbs (7.7 MB, then 12.8 MB, in two runs of wan-haproxy), and whether
// the client blocks within the pause would be chance. With the cap the path
// holds a few MB and the client blocks well inside the pause.
func runLabBounded(t *testing.T, p lab.Profile, server, client []string) *lab.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bound := []string{"all=4096,131072,1048576"}
	// Keep: the run's directory (the hops' logs) stays for the checks, and
	// Hold is called while the hosts are still up: their counters are
	// read there with nstat, beside the lab's own reading.
	res, err := lab.Run(ctx, p, lab.Options{Bin: binDir, Deploy: labDeploy, LineBin: binary("delayline"), Server: server, Client: client,
		TCPRmem: bound, TCPWmem: bound, Keep: true, Hold: func(hosts []netlab.Host) { checkNetstatNstat(t, hosts) }})
	if res != nil {
		t.Cleanup(func() { os.RemoveAll(res.Dir) })
	}
	if err != nil {
		t.Fatalf("lab %s: %v", p.Name, err)
	}
	return res
}
