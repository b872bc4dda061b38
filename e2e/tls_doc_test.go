package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// docShellBlock returns the lines (continuations joined) of the first
// ```sh block after marker in doc.
func docShellBlock(t *testing.T, doc, marker string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, doc))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), marker)
	if !ok {
		t.Fatalf("%s: no %q", doc, marker)
	}
	_, rest, _ = strings.Cut(rest, "```sh\n")
	block, _, _ := strings.Cut(rest, "```")
	block = strings.ReplaceAll(block, "\\\n", " ")
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestTLSDocCA follows docs/TLS.md's recipe for a test CA and a server
// certificate signed by it: its openssl commands run as written, then the
// bp-server and bp-client lines (on the test's ports) must complete a run
// over wss:// and tls:// with every byte acknowledged.
func TestTLSDocCA(t *testing.T) {
	t.Parallel()
	needTool(t, "openssl", "openssl")
	dir := t.TempDir()
	var server []string
	var clients [][]string
	for _, line := range docShellBlock(t, "docs/TLS.md", "**Making a test CA") {
		f := strings.Fields(line)
		switch f[0] {
		case "bp-server":
			server = f[1:]
		case "bp-client":
			clients = append(clients, f[1:])
		default:
			cmd := exec.Command("sh", "-ec", line)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", line, err, out)
			}
		}
	}
	if server == nil || len(clients) != 2 {
		t.Fatalf("docs/TLS.md: want a bp-server line and two bp-client lines, have %q and %q", server, clients)
	}
	abs := func(args []string) []string {
		out := append([]string{}, args...)
		for i, a := range out {
			if strings.HasSuffix(a, ".pem") {
				out[i] = filepath.Join(dir, a)
			}
		}
		return out
	}
	srv := startServer(t, abs(server)...)
	for _, args := range clients {
		args = abs(args)
		for i, a := range args {
			a = strings.Replace(a, "127.0.0.1:8080", srv.HTTPAddr, 1)
			args[i] = strings.Replace(a, "127.0.0.1:8081", srv.TCPAddr, 1)
		}
		sum, code, stderr := runClient(t, append(args, "--duration", "1s", "--rate", "20")...)
		if code != 0 || sum.BytesWritten == 0 || sum.BytesAcked != sum.BytesWritten {
			t.Errorf("bp-client %s: exit %d, %d written, %d acknowledged\n%s", strings.Join(args, " "), code, sum.BytesWritten, sum.BytesAcked, stderr)
		}
	}
}
