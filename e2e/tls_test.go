package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/go-backpressure/go-backpressure/internal/pki"
)

// testPKI is a certificate authority and a server certificate it signed for
// 127.0.0.1 and localhost, written as PEM files into a test's temp dir.
type testPKI struct {
	CAFile, CertFile, KeyFile string
	pool                      *x509.CertPool
}

// newTestPKI generates a fresh CA and server certificate (ECDSA P-256).
func newTestPKI(t testing.TB, name string) testPKI {
	t.Helper()
	f, err := pki.Write(t.TempDir(), name, "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return testPKI{CAFile: f.CAFile, CertFile: f.CertFile, KeyFile: f.KeyFile, pool: f.Pool}
}

// ServeArgs are the flags that make bp-server or bp-relay serve this
// certificate.
func (p testPKI) ServeArgs() []string {
	return []string{"--tls-cert", p.CertFile, "--tls-key", p.KeyFile}
}

// HTTPClient trusts this CA only.
func (p testPKI) HTTPClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.pool},
	}}
}

// scrapeTLS is scrape over https, trusting p's CA.
func scrapeTLS(t testing.TB, p testPKI, url string) Scrape {
	t.Helper()
	resp, err := p.HTTPClient().Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: HTTP %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return Scrape(fams)
}

// TestTLSClientServer: bp-client to a TLS bp-server over wss:// and
// tls:// moves exactly the bytes asked for, acknowledged end to end, and
// the kernel's socket statistics are read through TLS on both sides.
func TestTLSClientServer(t *testing.T) {
	pki := newTestPKI(t, "server")
	srv := startServer(t, pki.ServeArgs()...)
	const count, size = 30, 32 << 10
	const total = count * size
	for _, tc := range []struct{ proto, target string }{
		{"websocket", "wss://" + srv.HTTPAddr + "/ws"},
		{"tcp", "tls://" + srv.TCPAddr},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			before := scrapeTLS(t, pki, "https://"+srv.HTTPAddr+"/metrics")
			// 20 messages a second: 1.5 s, so the samplers see the socket.
			c := startClient(t, "--target", tc.target, "--ca-file", pki.CAFile, "--rate", "20",
				"--count", strconv.Itoa(count), "--payload-size", strconv.Itoa(size), "--duration", "0")
			eventually(t, 20*time.Second, func() string {
				m := scrapeTLS(t, pki, "https://"+srv.HTTPAddr+"/metrics")
				if v, _ := m.Get("bp_socket_sampled_connections", "protocol", tc.proto); v != 1 {
					return fmt.Sprintf("server sampled %v %s sockets, want 1", v, tc.proto)
				}
				return ""
			})
			c.WaitLinger(t, 30*time.Second)
			cm := scrape(t, c.MetricsURL)
			sum, code := c.Finish(t, 10*time.Second)
			if code != 0 || !sum.Completed {
				t.Fatalf("client exit %d, report %+v; stderr:\n%s", code, sum, c.Stderr())
			}
			if sum.BytesWritten != total || sum.BytesAcked != total {
				t.Errorf("client wrote %d, acked %d; want %d", sum.BytesWritten, sum.BytesAcked, total)
			}
			if sum.PeakSendQueueBytes == nil {
				t.Errorf("report has no kernel send queue: socket statistics not read through TLS")
			}
			if v := cm.Value(t, "bp_bytes_acked_total", "protocol", tc.proto); v != total {
				t.Errorf("client bp_bytes_acked_total = %v, want %d", v, total)
			}
			eventually(t, 5*time.Second, func() string {
				after := scrapeTLS(t, pki, "https://"+srv.HTTPAddr+"/metrics")
				got := after.Value(t, "bp_bytes_read_total", "protocol", tc.proto) - before.Value(t, "bp_bytes_read_total", "protocol", tc.proto)
				if got != total {
					return fmt.Sprintf("server read %v bytes, want %d", got, total)
				}
				if errs := after.Sum("bp_connection_errors_total") - before.Sum("bp_connection_errors_total"); errs != 0 {
					return fmt.Sprintf("server counted %v connection errors", errs)
				}
				return ""
			})
		})
	}
}

// TestTLSRelay: client -> bp-relay (TLS downstream) -> bp-server (TLS),
// over wss and tls: every hop moves exactly the bytes written.
func TestTLSRelay(t *testing.T) {
	srvPKI, relayPKI := newTestPKI(t, "server"), newTestPKI(t, "relay")
	srv := startServer(t, append(srvPKI.ServeArgs(), "--sample-interval", "0")...)
	const count, size = 40, 16 << 10
	const total = count * size
	for _, tc := range []struct{ name, upstream, proto string }{
		{"wss", "wss://" + srv.HTTPAddr + "/ws", "websocket"},
		{"tls", "tls://" + srv.TCPAddr, "tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			relay := startRelay(t, tc.upstream, append(relayPKI.ServeArgs(), "--ca-file", srvPKI.CAFile, "--sample-interval", "0")...)
			target := "wss://" + relay.HTTPAddr + "/ws"
			if tc.proto == "tcp" {
				target = "tls://" + relay.TCPAddr
			}
			sBefore := scrapeTLS(t, srvPKI, "https://"+srv.HTTPAddr+"/metrics")
			sum, code, stderr := runClient(t, "--target", target, "--ca-file", relayPKI.CAFile,
				"--count", strconv.Itoa(count), "--payload-size", strconv.Itoa(size), "--duration", "0")
			if code != 0 || !sum.Completed {
				t.Fatalf("client exit %d, report %+v; stderr:\n%s\nrelay:\n%s", code, sum, stderr, relay.Stderr())
			}
			if sum.BytesWritten != total || sum.BytesAcked != total {
				t.Errorf("client wrote %d, acked %d; want %d", sum.BytesWritten, sum.BytesAcked, total)
			}
			eventually(t, 5*time.Second, func() string {
				r := scrapeTLS(t, relayPKI, "https://"+relay.HTTPAddr+"/metrics")
				if got := r.Sum("bp_bytes_read_total"); got != total {
					return fmt.Sprintf("relay read %v, want %d", got, total)
				}
				if got := r.Sum("bp_bytes_written_total"); got != total {
					return fmt.Sprintf("relay wrote %v, want %d", got, total)
				}
				s := scrapeTLS(t, srvPKI, "https://"+srv.HTTPAddr+"/metrics")
				if got := s.Value(t, "bp_bytes_read_total", "protocol", tc.proto) - sBefore.Value(t, "bp_bytes_read_total", "protocol", tc.proto); got != total {
					return fmt.Sprintf("server read %v, want %d", got, total)
				}
				return ""
			})
		})
	}
}

// TestTLSVerification: a certificate from an authority the client does not
// trust stops the run with a clear error and exit status 1; the system's
// authorities do not know the test CA either; --insecure-skip-verify
// connects anyway and says so in the log.
func TestTLSVerification(t *testing.T) {
	pki, other := newTestPKI(t, "server"), newTestPKI(t, "other")
	srv := startServer(t, append(pki.ServeArgs(), "--sample-interval", "0")...)
	wss := "wss://" + srv.HTTPAddr + "/ws"
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		// The wrong CA: the handshake fails, named as such.
		{"other CA", []string{"--target", wss, "--ca-file", other.CAFile}, 1, "certificate signed by unknown authority"},
		// The same over tls://.
		{"other CA tls", []string{"--target", "tls://" + srv.TCPAddr, "--ca-file", other.CAFile}, 1, "tls handshake with " + srv.TCPAddr},
		// No CA file: the system's authorities, which do not know the test CA.
		{"system CAs", []string{"--target", wss}, 1, "--ca-file"},
		// Explicitly unverified: the run completes, with a warning.
		{"insecure", []string{"--target", wss, "--insecure-skip-verify"}, 0, "not verifying the server's TLS certificate"},
		// The right CA and name: the reference.
		{"right CA", []string{"--target", wss, "--ca-file", pki.CAFile}, 0, `"msg":"bp-client starting"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum, code, stderr := runClient(t, append(tc.args, "--count", "4", "--payload-size", "1KiB", "--duration", "0")...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr)
			}
			if tc.code == 0 && sum.BytesAcked != 4<<10 {
				t.Errorf("acked %d, want %d", sum.BytesAcked, 4<<10)
			}
			if tc.code != 0 && (sum.Completed || sum.BytesAcked != 0) {
				t.Errorf("report %+v: want a failed run with nothing acknowledged", sum)
			}
		})
	}
}

// TestTLSConfigErrors: bad TLS settings stop each binary at start with
// exit status 2 and a message naming the setting.
func TestTLSConfigErrors(t *testing.T) {
	pki := newTestPKI(t, "server")
	missing := filepath.Join(t.TempDir(), "nope.pem")
	for _, tc := range []struct {
		name, bin string
		args      []string
		want      string
	}{
		{"server cert without key", "bp-server", []string{"--tls-cert", pki.CertFile}, "--tls-key (BP_TLS_KEY): is required with --tls-cert"},
		{"server key is not a key", "bp-server", []string{"--tls-cert", pki.CertFile, "--tls-key", pki.CAFile}, "--tls-cert (BP_TLS_CERT): cannot load it"},
		{"relay key without cert", "bp-relay", []string{"--upstream", "tcp://127.0.0.1:1", "--tls-key", pki.KeyFile}, "--tls-cert (BP_TLS_CERT): is required with --tls-key"},
		{"relay missing CA file", "bp-relay", []string{"--upstream", "wss://127.0.0.1:1/ws", "--ca-file", missing}, "--ca-file (BP_CA_FILE): cannot read it"},
		{"client CA file is a key", "bp-client", []string{"--target", "wss://127.0.0.1:1/ws", "--ca-file", pki.KeyFile}, "--ca-file (BP_CA_FILE): holds no PEM certificate"},
		{"client tls without port", "bp-client", []string{"--target", "tls://127.0.0.1"}, "want tls://host:port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProc(t, tc.bin, nil, tc.args...)
			if code := p.Wait(t, 20*time.Second); code != 2 {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, p.Stderr())
			}
			if !strings.Contains(p.Stderr(), tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, p.Stderr())
			}
		})
	}
}

// TestTLSBrowserPage: the browser page is served over https, and picks
// wss:// for its default target when loaded over https.
func TestTLSBrowserPage(t *testing.T) {
	pki := newTestPKI(t, "server")
	srv := startServer(t, append(pki.ServeArgs(), "--tcp-addr", "", "--sample-interval", "0")...)
	get := func(path string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+srv.HTTPAddr+path, nil)
		resp, err := pki.HTTPClient().Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: HTTP %s", path, resp.Status)
		}
		return string(b)
	}
	if page := get("/client"); !strings.Contains(page, "client/app.js") {
		t.Errorf("/client over https is not the page:\n%.300s", page)
	}
	// The page picks its scheme per transport: wss: for WebSocket (and
	// https: for HTTP/2) when it came over https:. web/e2e_hops_test.go
	// sees Chromium do it; this checks the page bp-server serves over TLS
	// is that page.
	if js := get("/client/app.js"); !strings.Contains(js, `location.protocol === "https:" ? t.secure : t.plain`) ||
		!strings.Contains(js, `secure: "wss:", plain: "ws:"`) {
		t.Errorf("app.js does not choose wss: from an https page")
	}
	// Plain HTTP on the TLS listener is refused, not served in clear.
	resp, err := http.Get("http://" + srv.HTTPAddr + "/healthz")
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain http on the TLS listener answered 200")
		}
	}
}
