package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// The ack streams of browser uploads over HTTP/2 (internal/hop/h2acks.go),
// driven the way the page drives them but from Go's HTTP/2 client over
// h2c: bad ids refused with a clear status and counted, the acks on the
// sibling stream to the byte, and an upload whose ack stream went away
// still read and counted.

// h2cClient is an HTTP/2 client with prior knowledge: one connection for
// all its requests.
func h2cClient(t *testing.T) *http.Client {
	t.Helper()
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: protos}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// openAckStream opens an ack stream and returns its id and body.
func openAckStream(t *testing.T, ctx context.Context, c *http.Client, addr string) (string, io.ReadCloser) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/h2/acks", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Header.Get("Bp-Ack-Stream")
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || len(id) != 32 {
		t.Fatalf("GET /h2/acks: %s over %s, id %q; want 200 over HTTP/2 with a 32-hex id", resp.Status, resp.Proto, id)
	}
	return id, resp.Body
}

// post sends body to /h2?acks=id and returns the status and the answer.
func post(t *testing.T, c *http.Client, addr, id string, body io.Reader) (int, string) {
	t.Helper()
	resp, err := c.Post("http://"+addr+"/h2?acks="+id, "application/octet-stream", body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// uploadBytes is an up run as bp-client sends it: hello line, n data
// frames of size bytes, the fin.
func uploadBytes(t *testing.T, n, size int) []byte {
	t.Helper()
	hello, err := flow.EncodeHello(flow.Hello{Direction: flow.Up, PayloadSize: size, TotalBytes: int64(n * size)})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString(flow.TCPHelloPrefix)
	b.Write(hello)
	b.WriteByte('\n')
	frame := func(typ byte, body []byte) {
		var h [5]byte
		h[0] = typ
		binary.BigEndian.PutUint32(h[1:], uint32(len(body)))
		b.Write(h[:])
		b.Write(body)
	}
	payload := bytes.Repeat([]byte{'x'}, size)
	for range n {
		frame('D', payload)
	}
	frame('C', flow.AppendControl(nil, flow.Control{Type: flow.Fin, Bytes: int64(n * size)}))
	return b.Bytes()
}

// readAck reads one ack from the ack stream; false at its end.
func readAck(t *testing.T, body io.Reader) (int64, bool) {
	t.Helper()
	var h [5]byte
	if _, err := io.ReadFull(body, h[:]); err == io.EOF {
		return 0, false
	} else if err != nil {
		t.Fatalf("ack stream: %v", err)
	}
	if h[0] != 'C' {
		t.Fatalf("ack stream: a frame of type %q", h[0])
	}
	msg := make([]byte, binary.BigEndian.Uint32(h[1:]))
	if _, err := io.ReadFull(body, msg); err != nil {
		t.Fatalf("ack stream: %v", err)
	}
	var ctl flow.Control
	if err := json.Unmarshal(msg, &ctl); err != nil || ctl.Type != flow.Ack {
		t.Fatalf("ack stream: %q (%v)", msg, err)
	}
	return ctl.Bytes, true
}

// readAcks reads the ack stream's acks until it ends.
func readAcks(t *testing.T, body io.Reader) []int64 {
	t.Helper()
	var acks []int64
	for {
		b, ok := readAck(t, body)
		if !ok {
			return acks
		}
		acks = append(acks, b)
	}
}

// TestAckStreamRefusals: every wrong use of an ack stream id is answered
// with its status and reason and counted; the right one carries the
// upload's acks, to the byte, and ends with the run, also when the upload
// comes on another connection.
func TestAckStreamRefusals(t *testing.T) {
	p := startInProc(t, "--tcp-addr", "")
	c := h2cClient(t)
	id, acks := openAckStream(t, context.Background(), c, p.http)
	defer acks.Close()

	// The upload starts (hello) and holds its payload until the checks
	// that need the id claimed are done.
	const n, size = 40, 65536
	run := uploadBytes(t, n, size)
	helloEnd := bytes.IndexByte(run, '\n') + 1
	pr, pw := io.Pipe()
	proceed := make(chan struct{})
	upload := make(chan int, 1)
	// The upload comes on another connection than its ack stream, as
	// behind a hop that spreads a page's streams over its own.
	viaHop := h2cClient(t)
	go func() {
		go func() {
			pw.Write(run[:helloEnd])
			<-proceed
			pw.Write(run[helloEnd:])
			pw.Close()
		}()
		status, _ := post(t, viaHop, p.http, id, pr)
		upload <- status
	}()
	// The first ack (bytes 0, one interval after the hello) shows the
	// upload claimed the stream.
	if first, ok := readAck(t, acks); !ok || first != 0 {
		t.Fatalf("first ack %d (stream open: %v), want 0", first, ok)
	}
	cases := []struct {
		name   string
		client *http.Client
		id     string
		status int
		says   string
	}{
		{"malformed", c, "zz", http.StatusBadRequest, "malformed ack stream id"},
		{"unknown", c, strings.Repeat("0", 32), http.StatusNotFound, "no ack stream"},
		{"claimed already", c, id, http.StatusConflict, "already carries"},
		// Behind a hop the upload may come on another connection than
		// its ack stream: the id pairs them, so another connection is
		// refused for the same reason.
		{"claimed already, from another connection", h2cClient(t), id, http.StatusConflict, "already carries"},
	}
	for _, tc := range cases {
		status, answer := post(t, tc.client, p.http, tc.id, bytes.NewReader(run))
		if status != tc.status || !strings.Contains(answer, tc.says) {
			t.Errorf("%s id: HTTP %d %q, want %d saying %q", tc.name, status, answer, tc.status, tc.says)
		}
	}
	close(proceed)
	got := readAcks(t, acks)
	if st := <-upload; st != http.StatusOK {
		t.Errorf("the upload's answer: HTTP %d, want 200", st)
	}
	if len(got) < 2 || got[len(got)-1] != n*size {
		t.Errorf("acks on the ack stream %v, want them to end with the run's %d bytes", got, n*size)
	}
	p.waitMetric(t, `bp_bytes_read_total{protocol="http2"}`, n*size)
	p.waitMetric(t, `bp_connections_rejected_total{protocol="http2",reason="ack_stream"}`, float64(len(cases)))
	if t.Failed() {
		t.Logf("server log:\n%s", p.logs)
	}
}

// TestAckStreamGoneUploadCounted: the page's ack stream goes away (the
// tab cancels it) while its upload runs: the upload is still read to the
// end and counted, and an upload that is no upload is refused.
func TestAckStreamGoneUploadCounted(t *testing.T) {
	p := startInProc(t, "--tcp-addr", "")
	c := h2cClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	id, acks := openAckStream(t, ctx, c, p.http)
	const n, size = 30, 65536
	run := uploadBytes(t, n, size)
	helloEnd := bytes.IndexByte(run, '\n') + 1
	pr, pw := io.Pipe()
	go func() {
		pw.Write(run[:helloEnd])
		// The first ack's header (one interval in) shows the claim was
		// made.
		io.ReadFull(acks, make([]byte, 5))
		cancel() // RST_STREAM of the ack stream
		pw.Write(run[helloEnd:])
		pw.Close()
	}()
	if status, answer := post(t, c, p.http, id, pr); status != http.StatusOK {
		t.Fatalf("upload: HTTP %d %q", status, answer)
	}
	p.waitMetric(t, `bp_bytes_read_total{protocol="http2"}`, n*size)

	// A download cannot name an ack stream: its hello is refused.
	id, acks = openAckStream(t, context.Background(), c, p.http)
	defer acks.Close()
	hello, _ := flow.EncodeHello(flow.Hello{Direction: flow.Down, PayloadSize: 1024, TotalBytes: 1024})
	status, answer := post(t, c, p.http, id, strings.NewReader(fmt.Sprintf("%s%s\n", flow.TCPHelloPrefix, hello)))
	if status != http.StatusBadRequest || !strings.Contains(answer, "uploads only") {
		t.Errorf("a download naming an ack stream: HTTP %d %q, want 400 saying it serves uploads only", status, answer)
	}
	p.waitMetric(t, `bp_connection_errors_total{protocol="http2",reason="hello"}`, 1)
	if got := readAcks(t, acks); len(got) != 0 {
		t.Errorf("the refused download's ack stream carried acks %v", got)
	}
}

// TestAckStreamBound: at most 64 ack streams wait unclaimed; the next is
// answered 503 and counted, and HTTP/1.1 gets none.
func TestAckStreamBound(t *testing.T) {
	p := startInProc(t, "--tcp-addr", "")
	c := h2cClient(t)
	for range 64 {
		_, body := openAckStream(t, context.Background(), c, p.http)
		defer body.Close()
	}
	if got := getStatus(t, c, "http://"+p.http+"/h2/acks"); got != http.StatusServiceUnavailable {
		t.Errorf("the 65th unclaimed ack stream: HTTP %d, want 503", got)
	}
	p.waitMetric(t, `bp_connections_rejected_total{protocol="http2",reason="limit"}`, 1)
	if got := getStatus(t, http.DefaultClient, "http://"+p.http+"/h2/acks"); got != http.StatusHTTPVersionNotSupported {
		t.Errorf("GET /h2/acks over HTTP/1.1: HTTP %d, want 505", got)
	}
}

// getStatus is the status of a GET of url.
func getStatus(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestH2OriginRefused: a page of another origin reaches /h2 and
// /h2/acks with fetch() as it reaches /ws: refused 403 and counted, as at
// /ws; the same origin and clients without an Origin (bp-client) pass.
func TestH2OriginRefused(t *testing.T) {
	p := startInProc(t, "--tcp-addr", "")
	c := h2cClient(t)
	for _, path := range []string{"/h2/acks", "/h2"} {
		method := http.MethodGet
		if path == "/h2" {
			method = http.MethodPost
		}
		req, _ := http.NewRequest(method, "http://"+p.http+path, strings.NewReader(""))
		req.Header.Set("Origin", "https://elsewhere.example")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "--allowed-origins") {
			t.Errorf("%s %s from another origin: HTTP %d %q, want 403 naming --allowed-origins", method, path, resp.StatusCode, b)
		}
	}
	p.waitMetric(t, `bp_connections_rejected_total{protocol="http2",reason="origin"}`, 2)
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.http+"/h2/acks", nil)
	req.Header.Set("Origin", "http://"+p.http)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /h2/acks from the same origin: %s, want 200", resp.Status)
	}
}
