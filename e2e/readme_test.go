package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// docCommand finds the one line of doc (a path from the repository's root)
// that re matches, so that a test runs what the doc shows.
func docCommand(t *testing.T, doc string, re *regexp.Regexp) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, doc))
	if err != nil {
		t.Fatal(err)
	}
	m := re.FindAllString(string(b), -1)
	if len(m) != 1 {
		t.Fatalf("%s: want one line matching %s, found %q", doc, re, m)
	}
	return m[0]
}

// rawSenderRE is the hello-less sender the docs show: a file of zeros piped
// into socat, which ends the stream when the file ends.
var rawSenderRE = regexp.MustCompile(`(?m)^head -c 100M /dev/zero \| socat -u - TCP:127\.0\.0\.1:(8081|8091)$`)

// TestDocRawSender runs the raw-sender command of README.md (at bp-server)
// and of docs/RELAY.md (at bp-relay), with a smaller file and the test's
// ports, and checks that the server read every byte as payload.
func TestDocRawSender(t *testing.T) {
	t.Parallel()
	needTool(t, "socat", "socat")
	for _, doc := range []string{"README.md", "docs/RELAY.md"} {
		t.Run(doc, func(t *testing.T) {
			t.Parallel()
			line := docCommand(t, doc, rawSenderRE)
			srv := startServer(t)
			target := srv.TCPAddr
			if strings.HasSuffix(line, ":8091") {
				target = startRelay(t, srv.TCPURL()).TCPAddr
			}
			cmd := rawSenderRE.ReplaceAllString(line, "head -c 1M /dev/zero | socat -u - TCP:"+target)
			if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", cmd, err, out)
			}
			eventually(t, 10*time.Second, func() string {
				m := scrape(t, srv.MetricsURL())
				if got := m.Value(t, "bp_bytes_read_total", "protocol", "tcp"); got != 1<<20 {
					return fmt.Sprintf("%s: server read %.0f bytes, want %d", cmd, got, 1<<20)
				}
				return ""
			})
		})
	}
}

// TestDocCapturePorts: README's capture filters (tshark and Wireshark) name
// the ports make demo's server listens on, so a capture during the demo sees
// its traffic.
func TestDocCapturePorts(t *testing.T) {
	t.Parallel()
	demo, err := os.ReadFile(filepath.Join(repoRoot, "scripts/demo"))
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, v := range []string{"TCP_PORT", "HTTP_PORT"} {
		m := regexp.MustCompile(v + `=\$\{DEMO_` + v + `:-(\d+)\}`).FindSubmatch(demo)
		if m == nil {
			t.Fatalf("scripts/demo sets no default %s", v)
		}
		ports = append(ports, string(m[1]))
	}
	want := fmt.Sprintf("tcp port %s or tcp port %s", ports[0], ports[1])
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	filters := regexp.MustCompile(`tcp port \d+ or tcp port \d+`).FindAllString(string(readme), -1)
	if len(filters) < 2 {
		t.Fatalf("README.md shows %d capture filters, want the tshark and the Wireshark one", len(filters))
	}
	for _, f := range filters {
		if f != want {
			t.Errorf("README.md's capture filter %q, want make demo's %q", f, want)
		}
	}
}

// TestDocRelayUpstreamSchemes: every scheme bp-relay accepts upstream is
// named in README.md, docs/RELAY.md and bp-relay --help, and an unknown one
// is refused.
func TestDocRelayUpstreamSchemes(t *testing.T) {
	t.Parallel()
	help, _ := exec.Command(binary("bp-relay"), "--help").CombinedOutput()
	readme, _ := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	_, relayPara, _ := strings.Cut(string(readme), "connects to `--upstream`")
	relayPara, _, _ = strings.Cut(relayPara, "\n\n")
	relayDoc, _ := os.ReadFile(filepath.Join(repoRoot, "docs/RELAY.md"))
	intro, _, _ := strings.Cut(string(relayDoc), "\n\n## ")
	for _, scheme := range []string{"tcp", "tls", "ws", "wss"} {
		u := scheme + "://127.0.0.1:1"
		if _, err := flow.ParseTarget(u); err != nil {
			t.Errorf("%s: refused: %v", u, err)
		}
		if !strings.Contains(string(help), scheme+"://host:port") {
			t.Errorf("bp-relay --help does not name %s:// upstreams", scheme)
		}
		if !strings.Contains(relayPara, "`"+scheme+"://`") {
			t.Errorf("README.md's bp-relay paragraph does not name %s://", scheme)
		}
		if !strings.Contains(intro, "`"+scheme+"://`") {
			t.Errorf("docs/RELAY.md's introduction does not name %s://", scheme)
		}
	}
	if _, err := flow.ParseTarget("udp://127.0.0.1:1"); err == nil {
		t.Error("udp:// accepted")
	}
}

// streamCommandRE is a bp-client command of README.md's HTTP/2 and gRPC
// section: one line, at the default gRPC or HTTP port.
var streamCommandRE = regexp.MustCompile(`(?m)^bin/bp-client --target (grpc://127\.0\.0\.1:8082|h2c://127\.0\.0\.1:8080/h2) .*$`)

// TestDocStreamCommands runs README's gRPC and HTTP/2 commands at a
// bp-server on the test's ports, bounded to a second of writing, and checks
// that every stream ran and the server read every byte the client had
// acknowledged.
func TestDocStreamCommands(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := streamCommandRE.FindAllString(string(b), -1)
	if len(lines) != 2 {
		t.Fatalf("README.md: want a gRPC and an HTTP/2 bp-client command, found %q", lines)
	}
	for _, line := range lines {
		t.Run(strings.Fields(line)[2], func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			line := strings.NewReplacer("127.0.0.1:8082", srv.GRPCAddr, "127.0.0.1:8080", srv.HTTPAddr).Replace(line)
			args := append(strings.Fields(line)[1:], "--duration", "1s")
			sum, code, stderr := runClient(t, args...)
			if code != 0 || !sum.Completed {
				t.Fatalf("%s: exit %d, completed %v\n%s", line, code, sum.Completed, stderr)
			}
			proto := "grpc"
			if strings.Contains(line, "h2c://") {
				proto = "http2"
			}
			eventually(t, 10*time.Second, func() string {
				m := scrape(t, srv.MetricsURL())
				if got := m.Value(t, "bp_bytes_read_total", "protocol", proto); got != float64(sum.BytesAcked) || got == 0 {
					return fmt.Sprintf("%s: server read %.0f bytes, the client's report says %d acknowledged", line, got, sum.BytesAcked)
				}
				return ""
			})
		})
	}
}
