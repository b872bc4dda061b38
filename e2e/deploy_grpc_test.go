package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// addrPort is the port of a listen address such as ":8082" ("" when none).
func addrPort(addr string) string {
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// helpDefault is the default a binary's --help gives for a flag
// ("  --grpc-addr STRING  (BP_GRPC_ADDR, default :8082)").
func helpDefault(t *testing.T, bin, flag string) string {
	t.Helper()
	out, _ := exec.Command(binary(bin), "--help").CombinedOutput()
	m := regexp.MustCompile(`(?m)^  --` + regexp.QuoteMeta(flag) + ` \S+  \([A-Z_]+, default ([^)]*)\)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s --help gives no default for --%s", bin, flag)
	}
	return string(m[1])
}

// loopbackListeners moves every "--*-addr=:PORT" in args to 127.0.0.1:0, so
// a deployment's command runs here beside other tests.
func loopbackListeners(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if name, value, ok := strings.Cut(a, "="); ok && strings.HasSuffix(name, "-addr") && strings.HasPrefix(value, ":") {
			out[i] = name + "=127.0.0.1:0"
		}
	}
	return out
}

// TestComposeGRPC: docker-compose.yml's bp-server serves gRPC on the port
// the image exposes and bp-server defaults to, published on the host as the
// Compose Specification resolves it (compose-go); and that command, run
// natively with its listeners moved to loopback, serves a gRPC run whose
// bytes both ends count the same.
func TestComposeGRPC(t *testing.T) {
	t.Parallel()
	var c compose
	readYAML(t, filepath.Join(repoRoot, "docker-compose.yml"), &c)
	cmd := c.Services["bp-server"].Command
	grpcAddr, ok := flagPairs(cmd)["grpc-addr"]
	port := addrPort(grpcAddr)
	if !ok || port == "" {
		t.Fatalf("compose bp-server: --grpc-addr %q, want a port (the gRPC listener)", grpcAddr)
	}
	if def := addrPort(helpDefault(t, "bp-server", "grpc-addr")); def != port {
		t.Errorf("compose bp-server --grpc-addr port %s, bp-server's default %s", port, def)
	}

	df, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	expose := regexp.MustCompile(`(?m)^EXPOSE (.+)$`).FindStringSubmatch(string(df))
	if expose == nil || !slices.Contains(strings.Fields(expose[1]), port) {
		t.Errorf("Dockerfile EXPOSE %v lacks the gRPC port %s", expose, port)
	}

	svc, err := loadCompose(t).GetService("bp-server")
	if err != nil {
		t.Fatal(err)
	}
	published := false
	for _, pc := range svc.Ports {
		if strconv.Itoa(int(pc.Target)) == port && pc.Published == port && pc.Protocol == "tcp" {
			published = true
		}
	}
	if !published {
		t.Errorf("compose bp-server publishes %+v, want %s:%s/tcp (the gRPC listener)", svc.Ports, port, port)
	}

	// The compose command itself, natively: a short gRPC run through it.
	srv := startServer(t, loopbackListeners(cmd[1:])...)
	if srv.GRPCAddr == "" {
		t.Fatal("compose's bp-server command, run natively, opens no gRPC listener")
	}
	sum, code, stderr := runClient(t, "--target", srv.grpcTarget(), "--streams", "2", "--duration", "1s")
	if code != 0 || !sum.Completed {
		t.Fatalf("bp-client grpc:// at compose's bp-server: exit %d, completed %v; stderr:\n%s", code, sum.Completed, lastLines(stderr, 10))
	}
	read, _ := waitStreamTotals(t, srv, 2)
	if sum.BytesWritten == 0 || sum.BytesWritten != read {
		t.Errorf("client wrote %d over gRPC, compose's bp-server read %d", sum.BytesWritten, read)
	}
}
