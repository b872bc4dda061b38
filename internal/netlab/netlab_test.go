package netlab

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseLink(t *testing.T) {
	l, err := ParseLink("client-lb=100mbit,40ms,0.1%,mtu=9000", Link{})
	if err != nil {
		t.Fatal(err)
	}
	if l.A != "client" || l.B != "lb" || l.Rate != 100_000_000 || l.RTT != 40*time.Millisecond || l.Loss != 0.001 || l.MTU != 9000 {
		t.Fatalf("%+v", l)
	}
	if got := l.String(); got != "client-lb=100mbit,40ms,0.1%,mtu=9000" {
		t.Fatalf("String: %s", got)
	}
	base := Link{A: "client", B: "lb", Rate: 1e9, RTT: time.Millisecond}
	if l, _ := ParseLink("client-lb=5ms", base); l.Rate != 1e9 || l.RTT != 5*time.Millisecond {
		t.Fatalf("partial: %+v", l)
	}
	for _, bad := range []string{"client", "clientlb=1ms", "a-b=fast", "a-b=150%", "a-b=mtu=1", "a-b=-5ms", "a-b=100mbps", "a-b=40"} {
		if _, err := ParseLink(bad, Link{}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	// A misspelt part is named with what the syntax allows, not as a bad
	// duration.
	_, err = ParseLink("client-lb=100mbps", Link{})
	if want := `link client-lb: "100mbps": want a rate (100mbit), a round trip (30ms), a loss (0.1%) or mtu=N`; err == nil || err.Error() != want {
		t.Errorf("100mbps: %v, want %s", err, want)
	}
}

// TestPathRTT builds two hosts joined by a 100 Mbit/s, 30 ms link, sends
// 4 MiB across and checks the kernel's round trip (TCP_INFO) and that
// Close leaves no namespace: with the delay line in this process, and in
// a helper process (scripts/delayline, as the e2e tests run it), which
// Close ends.
func TestPathRTT(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	t.Run("in-process", func(t *testing.T) { checkPathRTT(t, "") })
	t.Run("helper", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "delayline")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/go-backpressure/go-backpressure/scripts/delayline").CombinedOutput(); err != nil {
			t.Fatalf("build scripts/delayline: %v\n%s", err, out)
		}
		n, procs := checkPathRTT(t, bin)
		if len(procs) != 1 || len(n.lines) != 0 {
			t.Fatalf("%d helpers and %d lines in process, want the one helper", len(procs), len(n.lines))
		}
		if st := procs[0].cmd.ProcessState; st == nil || !st.Success() {
			t.Errorf("the helper after Close: %v, want exited cleanly", st)
		}
		// A helper that died under the run (its link stopped forwarding)
		// is Close's error, naming the link; the namespaces go all the same.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n, err := Create(ctx, Spec{Hosts: []string{"client", "server"}, LineBin: bin,
			Links: []Link{{A: "client", B: "server", RTT: 2 * time.Millisecond}}})
		if err != nil {
			t.Fatal(err)
		}
		n.procs[0].cmd.Process.Kill()
		if err := n.Close(); err == nil || !strings.Contains(err.Error(), "link client-server: delay line helper") {
			t.Errorf("Close after the helper was killed: %v, want the link's helper named", err)
		}
		if left := List(); len(left) > 0 {
			t.Errorf("left: %v", left)
		}
	})
}

// checkPathRTT returns the network, closed, and the helpers it ran.
func checkPathRTT(t *testing.T, lineBin string) (*Net, []*lineProc) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Create(ctx, Spec{Hosts: []string{"client", "server"}, LineBin: lineBin,
		Links: []Link{{A: "client", B: "server", Rate: 100_000_000, RTT: 30 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	srvAddr := n.Addr("server", "client") + ":9000"
	var ln net.Listener
	if err := Do(n.NS("server"), func() (err error) { ln, err = net.Listen("tcp", srvAddr); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	var c net.Conn
	if err := Do(n.NS("client"), func() (err error) { c, err = net.Dial("tcp", srvAddr); return }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	buf := make([]byte, 4<<20)
	if _, err := c.Write(buf); err != nil {
		t.Fatal(err)
	}
	raw, _ := c.(*net.TCPConn).SyscallConn()
	var info *unix.TCPInfo
	raw.Control(func(fd uintptr) { info, _ = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
	rtt, minRTT := time.Duration(info.Rtt)*time.Microsecond, time.Duration(info.Min_rtt)*time.Microsecond
	t.Logf("4 MiB written in %v; rtt %v, min_rtt %v", time.Since(start), rtt, minRTT)
	if minRTT < 27*time.Millisecond || minRTT > 33*time.Millisecond {
		t.Errorf("min_rtt %v, want 30ms within 10%%", minRTT)
	}
	c.Close()
	procs := n.procs
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if left := List(); len(left) > 0 {
		t.Errorf("left: %v", left)
	}
	return n, procs
}

// TestParseNetstat: the pairs of lines of /proc/net/netstat and snmp,
// named as nstat names them.
func TestParseNetstat(t *testing.T) {
	out := map[string]int64{}
	err := parseNetstat("TcpExt: SyncookiesSent TCPToZeroWindowAdv\nTcpExt: 0 17\nTcp: RtoAlgorithm MaxConn OutSegs\nTcp: 1 -1 4242\n", out)
	want := map[string]int64{"TcpExtSyncookiesSent": 0, "TcpExtTCPToZeroWindowAdv": 17, "TcpRtoAlgorithm": 1, "TcpMaxConn": -1, "TcpOutSegs": 4242}
	if err != nil || len(out) != len(want) {
		t.Fatalf("parse: %v, %v", out, err)
	}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("%s = %d, want %d", k, out[k], v)
		}
	}
	if err := parseNetstat("TcpExt: A B\nTcpExt: 1\n", map[string]int64{}); err == nil {
		t.Error("unpaired lines: no error")
	}
}
