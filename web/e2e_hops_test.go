package web_test

// End-to-end tests of the browser client behind the other hops users have:
// real HAProxy (Debian's package, deploy/haproxy/haproxy-ws.cfg, HTTP mode)
// and TLS (bp-server serving https and wss with a certificate made here).
// The helpers are in e2e_test.go.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

const haproxyHint = "install Debian's haproxy: apt-get install haproxy (or run scripts/install-test-deps)"

// haproxyPath finds HAProxy (Debian puts it in /usr/sbin, which is not on
// every user's PATH). In CI (CI=true) a missing HAProxy fails the test;
// elsewhere the test skips and says how to install it.
func haproxyPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/haproxy", "/usr/local/sbin/haproxy"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("haproxy not found; %s", haproxyHint)
	}
	t.Skipf("haproxy not found; %s", haproxyHint)
	return ""
}

// startHAProxy runs HAProxy in the foreground (-db) with
// deploy/haproxy/haproxy-ws.cfg in front of the bp-server at upstream, as
// the lab does, and returns its listen and stats (Prometheus exporter)
// addresses.
func startHAProxy(t *testing.T, upstream string) (listen, stats string) {
	t.Helper()
	exe := haproxyPath(t)
	cfg := filepath.Join("..", "deploy", "haproxy", "haproxy-ws.cfg")
	listen, stats = freePort(t), freePort(t)
	env := []string{"BP_HAPROXY_LISTEN=" + listen, "BP_HAPROXY_UPSTREAM=" + upstream, "BP_HAPROXY_STATS=" + stats}
	h := startProcEnv(t, env, exe, "-f", cfg, "-db")
	waitListening(t, h, listen)
	waitListening(t, h, stats)
	return listen, stats
}

// webSocketLog records the WebSocket connections the browser opened, as
// the DevTools protocol reports them: URL and handshake status.
type webSocketLog struct {
	mu     sync.Mutex
	urls   map[network.RequestID]string
	status map[network.RequestID]int64
}

func watchWebSockets(ctx context.Context) *webSocketLog {
	l := &webSocketLog{urls: map[network.RequestID]string{}, status: map[network.RequestID]int64{}}
	chromedp.ListenTarget(ctx, func(ev any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventWebSocketCreated:
			l.urls[ev.RequestID] = ev.URL
		case *network.EventWebSocketHandshakeResponseReceived:
			if ev.Response != nil {
				l.status[ev.RequestID] = ev.Response.Status
			}
		}
	})
	return l
}

// check asserts that exactly n WebSocket connections were opened, all to
// url, all upgraded (101).
func (l *webSocketLog) check(t *testing.T, url string, n int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.urls) != n {
		t.Errorf("browser opened %d WebSocket connections %v, want %d", len(l.urls), l.urls, n)
	}
	for id, u := range l.urls {
		if u != url {
			t.Errorf("browser opened a WebSocket to %s, want %s", u, url)
		}
		if got := l.status[id]; got != http.StatusSwitchingProtocols {
			t.Errorf("WebSocket to %s: handshake status %d, want 101", u, got)
		}
	}
}

// checkTarget asserts the page's own address and the WebSocket URL it
// chose by default.
func checkTarget(t *testing.T, p *page, wantProtocol, wantTarget string) {
	t.Helper()
	var protocol, target string
	p.eval(`location.protocol`, &protocol)
	p.eval(`document.getElementById("target").value`, &target)
	if protocol != wantProtocol {
		t.Errorf("page loaded over %q, want %q", protocol, wantProtocol)
	}
	if target != wantTarget {
		t.Fatalf("page's default target %q, want %q", target, wantTarget)
	}
}

// TestBrowserClientBehindHAProxy: the page is loaded through HAProxy in
// HTTP mode (HAProxy forwards /client and /ws to bp-server), connects to
// /ws through it, and the server reads exactly the bytes the page sent.
func TestBrowserClientBehindHAProxy(t *testing.T) {
	haproxyPath(t) // skip or fail before starting anything
	ctx := browser(t)
	sockets := watchWebSockets(ctx)
	server := startServer(t)
	listen, stats := startHAProxy(t, server)

	p := openClient(t, ctx, "http://"+listen+"/client")
	checkTarget(t, p, "http:", "ws://"+listen+"/ws")

	// A total that is not a whole number of messages.
	const perConn, conns = 3_000_000, 2
	const want = perConn * conns
	rep := p.runBytes(perConn, conns)
	if got := rep["target"]; got != "ws://"+listen+"/ws" {
		t.Errorf("report target %v, want HAProxy's ws://%s/ws", got, listen)
	}
	sockets.check(t, "ws://"+listen+"/ws", conns)
	waitMetric(t, "http://"+server+"/metrics", wsBytesRead, want, 10*time.Second)

	// The bytes did pass HAProxy: its frontend counted them, plus the page
	// load, the HTTP upgrades and WebSocket framing (14 bytes a message).
	inSeries := `haproxy_frontend_bytes_in_total{proxy="bp_in"}`
	var in float64
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if in, err = metricValue(context.Background(), "http://"+stats+"/metrics", inSeries); err == nil && in >= want {
			break
		}
	}
	t.Logf("HAProxy %s = %.0f, page sent %d", inSeries, in, want)
	if err != nil || in < want || in > want+256<<10 {
		t.Errorf("HAProxy %s = %.0f (err %v), want the %d bytes sent plus at most 256 KiB of HTTP and framing", inSeries, in, err, want)
	}
	p.screenshot("browser-client-haproxy")
}

// selfSignedCert writes a self-signed ECDSA certificate for 127.0.0.1 and
// localhost, and its key, to a temporary directory; the pool trusts it.
func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "go-backpressure test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestBrowserClientTLS: bp-server serves https and wss with a self-signed
// certificate; the page loaded over https connects with wss:// on its own,
// and the server reads exactly the bytes it sent.
func TestBrowserClientTLS(t *testing.T) {
	serverBin, err := buildBinary(t, "bp-server")
	if err != nil {
		t.Fatal(err)
	}
	help, _ := exec.Command(serverBin, "--help").CombinedOutput()
	if !strings.Contains(string(help), "tls-cert") || !strings.Contains(string(help), "tls-key") {
		t.Skip("bp-server has no --tls-cert/--tls-key flags yet (its --help lacks them); this case runs once TLS serving lands")
	}
	certFile, keyFile, pool := selfSignedCert(t)
	// Test only: Chromium does not trust the certificate made above, and
	// adding it to the profile's NSS store needs certutil. The page, its
	// scheme choice and the wss stream are the same with a trusted
	// certificate; the test's own HTTP client below does verify it.
	ctx := browser(t, chromedp.Flag("ignore-certificate-errors", true))
	sockets := watchWebSockets(ctx)
	addr := startServer(t, "--tls-cert", certFile, "--tls-key", keyFile)
	metrics := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	t.Cleanup(metrics.CloseIdleConnections)

	p := openClient(t, ctx, "https://"+addr+"/client")
	wsURL := "wss://" + addr + "/ws"
	checkTarget(t, p, "https:", wsURL)

	const messages, size, conns = 60, 65536, 2
	const want = messages * size * conns
	p.start(map[string]string{
		"payload-size": "64KiB", "rate": "0", "total": strconv.Itoa(messages),
		"total-unit": "messages", "connections": strconv.Itoa(conns),
	})
	rep := p.report(60 * time.Second)
	checkCompleted(t, rep, want)
	if got := rep["target"]; got != wsURL {
		t.Errorf("report target %v, want %s", got, wsURL)
	}
	sockets.check(t, wsURL, conns)
	waitMetricWith(t, metrics, "https://"+addr+"/metrics", wsBytesRead, want, 10*time.Second)

	// Plain http on the TLS port gets no page.
	if resp, err := http.Get("http://" + addr + "/client"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("http://%s/client answered 200 on the TLS listener", addr)
		}
	}
	p.screenshot("browser-client-tls")
}
