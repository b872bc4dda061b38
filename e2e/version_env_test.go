package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestVersionIsFlagOnly: BP_VERSION, a name CI systems and build scripts
// often set for their own purposes, must not make a binary print its version
// and exit (or refuse to start because the value is no boolean): --version
// is a flag only, and --help says so.
func TestVersionIsFlagOnly(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"true", "v1.2.3"} {
		env := []string{"BP_VERSION=" + v}
		srv := startServerEnv(t, env)
		relay := startProc(t, "bp-relay", env, "--http-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0",
			"--metrics-addr", "127.0.0.1:0", "--log-format", "json", "--upstream", srv.TCPURL())
		relay.WaitLog(t, "bp-relay listening", 20*time.Second)
		sum, code, stderr := runClientEnv(t, env, "--target", srv.TCPURL(), "--duration", "300ms", "--rate", "10")
		if code != 0 || sum.BytesWritten == 0 {
			t.Errorf("BP_VERSION=%s: bp-client exit %d, %d bytes written\n%s", v, code, sum.BytesWritten, stderr)
		}
	}
	for _, bin := range []string{"bp-server", "bp-client", "bp-relay"} {
		p := startProc(t, bin, nil, "--help")
		p.Wait(t, 10*time.Second)
		if out := p.Stdout() + p.Stderr(); !strings.Contains(out, "--version  (flag only, default false)") {
			t.Errorf("%s --help does not show --version as a flag only:\n%s", bin, out)
		}
	}
}
