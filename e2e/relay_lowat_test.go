package e2e

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// notsentRE is the unsent bytes in `ss -i`'s output (tcpi_notsent_bytes;
// ss leaves the field out when it is 0).
var notsentRE = regexp.MustCompile(`\bnotsent:(\d+)`)

// ssNotSent sums, with iproute2's ss, the unsent bytes of the established
// TCP sockets connected to dst: the kernel's own count, independent of
// the relay's.
func ssNotSent(t *testing.T, ss, dst string) (notsent, n int) {
	t.Helper()
	out, err := exec.Command(ss, "-tinH", "state", "established", "dst", dst).Output()
	if err != nil {
		t.Fatalf("ss dst %s: %v", dst, err)
	}
	// A socket's line starts at the margin; its -i details follow
	// indented.
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" && line[0] != ' ' && line[0] != '\t' {
			n++
		}
		if m := notsentRE.FindStringSubmatch(line); m != nil {
			v, _ := strconv.Atoi(m[1])
			notsent += v
		}
	}
	return notsent, n
}

// TestRelayUnsentBound: bp-relay's default --upstream-notsent-lowat
// (32KiB) bounds the unsent bytes of its upstream socket when the server
// stops reading, as ss reads them from the kernel: at most the watermark
// and the one splice or write that crossed it. The same relay with
// `--upstream-notsent-lowat 0` (the kernel's, unlimited) holds more, so
// the test fails if the default stops being applied.
func TestRelayUnsentBound(t *testing.T) {
	ss := needTool(t, "ss", "iproute2")
	const lowat, oneWrite = 32 << 10, 64<<10 + 5
	unsent := func(args ...string) int {
		srv := startServer(t, "--pause-after", "0s", "--pause-for", "1h", "--rcvbuf", "32KiB", "--sample-interval", "0")
		rl := startRelay(t, srv.TCPURL(), append([]string{"--sample-interval", "0"}, args...)...)
		blockedAfter(t, rl.Target("tcp"))
		dst := srv.TCPURL()[len("tcp://"):]
		n, conns := ssNotSent(t, ss, dst)
		if conns != 1 {
			t.Fatalf("ss found %d connections to %s, want the relay's one", conns, dst)
		}
		return n
	}
	def := unsent()
	off := unsent("--upstream-notsent-lowat", "0")
	t.Logf("relay's upstream unsent bytes with the server paused (ss): default %d, --upstream-notsent-lowat 0: %d", def, off)
	if def > lowat+oneWrite {
		t.Errorf("default relay: %d bytes unsent upstream, want at most %d (32 KiB and one write)", def, lowat+oneWrite)
	}
	if off <= lowat+oneWrite {
		t.Errorf("--upstream-notsent-lowat 0: %d bytes unsent upstream, want more than %d: the bound did not come from the default", off, lowat+oneWrite)
	}
}
