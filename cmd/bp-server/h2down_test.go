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
	"sync"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// The ack streams of browser downloads over HTTP/2 (internal/hop/h2down.go),
// driven the way the page drives them but from Go's HTTP/2 client over
// h2c: the download's body is its hello alone, its acks go on a sibling
// POST named by the id the download's answer carries; every misuse is
// refused with a clear status and counted.

// logIfFailed logs the server's log at the end of a test that failed.
func (p *inProc) logIfFailed(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", p.logs)
		}
	})
}

// helloLineOf is a hello as the first bytes of a request body.
func helloLineOf(t *testing.T, h flow.Hello) string {
	t.Helper()
	b, err := flow.EncodeHello(h)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s%s\n", flow.TCPHelloPrefix, b)
}

// startDownload posts a download's hello to /h2?acks=post and returns the
// id its answer names and the answer's body.
func startDownload(t *testing.T, ctx context.Context, c *http.Client, addr string, h flow.Hello) (string, io.ReadCloser) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/h2?acks=post", strings.NewReader(helloLineOf(t, h)))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Header.Get("Bp-Ack-Stream")
	if resp.StatusCode != http.StatusOK || len(id) != 32 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /h2?acks=post: %s, id %q: %q; want 200 with a 32-hex id", resp.Status, id, b)
	}
	return id, resp.Body
}

// postAcks opens the download id's ack stream with body; the answer's
// status and text come on the channel once the server answers.
func postAcks(c *http.Client, addr, id string, body io.Reader) <-chan string {
	out := make(chan string, 1)
	go func() {
		resp, err := c.Post("http://"+addr+"/h2/acks?download="+id, "application/octet-stream", body)
		if err != nil {
			out <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- strings.TrimSpace(fmt.Sprintf("%d %s", resp.StatusCode, b))
	}()
	return out
}

// controlFrame is ctl as a frame of the sibling's body.
func controlFrame(ctl flow.Control) []byte {
	body := flow.AppendControl(nil, ctl)
	f := []byte{'C', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(f[1:], uint32(len(body)))
	return append(f, body...)
}

// readDownload reads a download's response as the page does: data frames,
// counted, and an ack on w after each, until the server's fin; then the
// final ack. It returns the bytes read and the fin's total.
func readDownload(t *testing.T, body io.Reader, w io.Writer) (read, fin int64) {
	t.Helper()
	var h [5]byte
	for {
		if _, err := io.ReadFull(body, h[:]); err != nil {
			t.Fatalf("download after %d bytes: %v", read, err)
		}
		n := int64(binary.BigEndian.Uint32(h[1:]))
		switch h[0] {
		case 'D':
			if _, err := io.CopyN(io.Discard, body, n); err != nil {
				t.Fatal(err)
			}
			read += n
			w.Write(controlFrame(flow.Control{Type: flow.Ack, Bytes: read}))
		case 'C':
			msg := make([]byte, n)
			if _, err := io.ReadFull(body, msg); err != nil {
				t.Fatal(err)
			}
			var ctl flow.Control
			if err := json.Unmarshal(msg, &ctl); err != nil {
				t.Fatalf("control frame %q: %v", msg, err)
			}
			if ctl.Type == flow.Fin {
				w.Write(controlFrame(flow.Control{Type: flow.Ack, Bytes: read}))
				return read, ctl.Bytes
			}
		default:
			rest, _ := io.ReadAll(io.LimitReader(body, 200))
			t.Fatalf("download: a frame of type %q: %q", h[0], append(h[:], rest...))
		}
	}
}

// TestDownloadAckStream: a download whose acks come on a sibling POST,
// on another connection than the download (as behind a hop): every byte
// the server wrote is read and acknowledged, by the server's own count,
// and both streams end with the run.
func TestDownloadAckStream(t *testing.T) {
	p := startInProc(t, "--tcp-addr", "")
	p.logIfFailed(t)
	const total = 5_000_000
	id, down := startDownload(t, context.Background(), h2cClient(t), p.http, flow.Hello{Direction: flow.Down, PayloadSize: 65536, TotalBytes: total})
	defer down.Close()
	pr, pw := io.Pipe()
	acks := postAcks(h2cClient(t), p.http, id, pr)
	read, fin := readDownload(t, down, pw)
	pw.Close() // the run's end: the server's session sees the client close
	if rest, err := io.ReadAll(down); err != nil || len(rest) != 0 {
		t.Errorf("after the fin the download sent %q (%v), want its end", rest, err)
	}
	if got := <-acks; got != "200" {
		t.Errorf("the ack stream's answer: %q, want 200", got)
	}
	if read != total || fin != total {
		t.Errorf("read %d bytes, fin says %d; want %d", read, fin, total)
	}
	p.waitMetric(t, `bp_bytes_written_total{protocol="http2"}`, total)
	p.waitMetric(t, `bp_bytes_acked_total{protocol="http2"}`, total)
	p.waitMetric(t, `bp_connections{protocol="http2"}`, 0)
	p.waitMetric(t, `bp_stream_buffered_bytes{protocol="http2"}`, 0)
	if got := p.metric(t, `bp_connection_errors_total{protocol="http2",reason="peer_closed"}`); got != 0 {
		t.Errorf("%.0f runs ended with peer_closed, want 0", got)
	}
}

// TestDownloadAckStreamRefusals: every wrong use of a download's ack
// stream is answered with its status and reason and counted: ids that
// are malformed, unknown (an upload's ack stream id among them) or taken;
// a download whose ack stream never comes ends, after the claim timeout,
// with a refusal line; a hello that is no download, or is not alone in
// its body, is refused; an oversized control message on the ack stream
// ends the run, counted.
func TestDownloadAckStreamRefusals(t *testing.T) {
	p := startInProc(t, "--tcp-addr", "")
	p.logIfFailed(t)
	c := h2cClient(t)
	down := flow.Hello{Direction: flow.Down, PayloadSize: 16384, TotalBytes: 1 << 20, Rate: 10}

	// Never joined: the refusal comes after ackClaimTimeout (10 s); the
	// other checks run meanwhile.
	_, lonely := startDownload(t, context.Background(), c, p.http, down)
	refusal := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(lonely)
		refusal <- string(b)
	}()

	id, running := startDownload(t, context.Background(), c, p.http, down)
	defer running.Close()
	pr, pw := io.Pipe()
	defer pw.Close()
	postAcks(c, p.http, id, pr)
	upID, upAcks := openAckStream(t, context.Background(), c, p.http)
	defer upAcks.Close()
	ackRefusals := []struct{ name, id, want string }{
		{"malformed", "zz", "400 malformed download id"},
		{"unknown", strings.Repeat("0", 32), "404 no download"},
		{"an upload's ack stream's", upID, "404 no download"},
	}
	for _, tc := range ackRefusals {
		if got := <-postAcks(c, p.http, tc.id, strings.NewReader("")); !strings.HasPrefix(got, tc.want) {
			t.Errorf("a download's ack stream naming a %s id: %q, want %q", tc.name, got, tc.want)
		}
	}
	// The running download's first bytes show its ack stream claimed it.
	io.ReadFull(running, make([]byte, 5))
	if got := <-postAcks(c, p.http, id, strings.NewReader("")); !strings.HasPrefix(got, "409 download "+id+" already carries") {
		t.Errorf("a second ack stream for one download: %q, want 409", got)
	}
	if status, answer := post(t, c, p.http, id, strings.NewReader(helloLineOf(t, flow.Hello{}))); status != http.StatusNotFound {
		t.Errorf("an upload naming a download's id: HTTP %d %q, want 404", status, answer)
	}

	hellos := []struct{ name, body, says string }{
		{"an upload", helloLineOf(t, flow.Hello{Direction: flow.Up}), "downloads only"},
		{"not alone", helloLineOf(t, down) + "C\x00\x00\x00\x02{}", "hello alone"},
		{"no hello", "D\x00\x00\x00\x01x", "starts with a hello"},
	}
	for _, tc := range hellos {
		resp, err := c.Post("http://"+p.http+"/h2?acks=post", "application/octet-stream", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), tc.says) || resp.Header.Get("Bp-Ack-Stream") != "" {
			t.Errorf("a download whose hello is %s: HTTP %d %q (id %q), want 400 saying %q and no id", tc.name, resp.StatusCode, b, resp.Header.Get("Bp-Ack-Stream"), tc.says)
		}
	}

	// An oversized control message on a running download's ack stream.
	id2, big := startDownload(t, context.Background(), c, p.http, down)
	defer big.Close()
	oversized := append([]byte{'C', 0, 0, 0x20, 0}, bytes.Repeat([]byte{' '}, 8192)...)
	postAcks(c, p.http, id2, bytes.NewReader(oversized))
	p.waitMetric(t, `bp_connection_errors_total{protocol="http2",reason="too_large"}`, 1)

	got := <-refusal
	if !strings.Contains(got, "BP/1 refused: no ack stream (POST /h2/acks?download=") {
		t.Errorf("the download no ack stream joined ended with %q, want the refusal line", got)
	}
	p.waitMetric(t, `bp_connections_rejected_total{protocol="http2",reason="ack_stream"}`, float64(len(ackRefusals)+3))
	p.waitMetric(t, `bp_connection_errors_total{protocol="http2",reason="hello"}`, float64(len(hellos)))
}

// TestDownloadAckStreamBound: at most 64 downloads wait for their ack
// streams; the next is answered 503 and counted; an ack stream over
// HTTP/1.1 is answered 505.
func TestDownloadAckStreamBound(t *testing.T) {
	p := startInProc(t, "--tcp-addr", "")
	c := h2cClient(t)
	down := flow.Hello{Direction: flow.Down, PayloadSize: 1024, TotalBytes: 1024}
	for range 64 {
		_, body := startDownload(t, context.Background(), c, p.http, down)
		defer body.Close()
	}
	resp, err := c.Post("http://"+p.http+"/h2?acks=post", "application/octet-stream", strings.NewReader(helloLineOf(t, down)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("the 65th download waiting for its ack stream: HTTP %d, want 503", resp.StatusCode)
	}
	p.waitMetric(t, `bp_connections_rejected_total{protocol="http2",reason="limit"}`, 1)
	resp, err = http.Post("http://"+p.http+"/h2/acks?download="+strings.Repeat("0", 32), "application/octet-stream", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusHTTPVersionNotSupported {
		t.Errorf("POST /h2/acks over HTTP/1.1: HTTP %d, want 505", resp.StatusCode)
	}
}

// TestBothAckStream: a both run on the same pieces: the download's
// response carries the server's payload and its acks of the client's,
// the sibling's body the client's payload, its acks and its fin. Every
// byte both ways is read and acknowledged, by the server's own count.
func TestBothAckStream(t *testing.T) {
	p := startInProc(t, "--tcp-addr", "")
	p.logIfFailed(t)
	const total, size = 3_000_000, 65536
	id, down := startDownload(t, context.Background(), h2cClient(t), p.http, flow.Hello{Direction: flow.Both, PayloadSize: size, TotalBytes: total})
	defer down.Close()
	pr, pw := io.Pipe()
	answer := postAcks(h2cClient(t), p.http, id, pr)
	// The client's half: its payload and fin, then its acks as it reads
	// (the writes are serialized: a frame at a time on the sibling).
	var mu sync.Mutex
	w := lockedWriter{mu: &mu, w: pw}
	go func() {
		payload := bytes.Repeat([]byte{'x'}, size)
		for sent := 0; sent < total; sent += size {
			n := min(size, total-sent)
			f := []byte{'D', 0, 0, 0, 0}
			binary.BigEndian.PutUint32(f[1:], uint32(n))
			w.Write(append(f, payload[:n]...))
		}
		w.Write(controlFrame(flow.Control{Type: flow.Fin, Bytes: total}))
	}()
	read, fin, serverAcked := readBoth(t, down, w, total)
	pw.Close()
	if got := <-answer; got != "200" {
		t.Errorf("the ack stream's answer: %q, want 200", got)
	}
	if read != total || fin != total || serverAcked != total {
		t.Errorf("read %d bytes, the server's fin %d, its last ack %d; want %d each", read, fin, serverAcked, total)
	}
	p.waitMetric(t, `bp_bytes_written_total{protocol="http2"}`, total)
	p.waitMetric(t, `bp_bytes_read_total{protocol="http2"}`, total)
	p.waitMetric(t, `bp_bytes_acked_total{protocol="http2"}`, total)
	p.waitMetric(t, `bp_connections{protocol="http2"}`, 0)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// readBoth reads a both run's response: the server's payload (acked on
// w), its acks of the client's payload, and its fin, until the fin and an
// ack of the sent bytes the client sent have come (the fin's final ack
// goes as the fin comes).
func readBoth(t *testing.T, body io.Reader, w io.Writer, sent int64) (read, fin, acked int64) {
	t.Helper()
	fin = -1
	var h [5]byte
	for fin < 0 || acked < sent {
		if _, err := io.ReadFull(body, h[:]); err != nil {
			t.Fatalf("both after %d bytes read, %d acked: %v", read, acked, err)
		}
		n := int64(binary.BigEndian.Uint32(h[1:]))
		if h[0] == 'D' {
			io.CopyN(io.Discard, body, n)
			read += n
			w.Write(controlFrame(flow.Control{Type: flow.Ack, Bytes: read}))
			continue
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(body, msg); err != nil {
			t.Fatal(err)
		}
		var ctl flow.Control
		json.Unmarshal(msg, &ctl)
		switch ctl.Type {
		case flow.Fin:
			fin = ctl.Bytes
			w.Write(controlFrame(flow.Control{Type: flow.Ack, Bytes: read}))
		case flow.Ack:
			acked = ctl.Bytes
		}
	}
	return read, fin, acked
}

// TestDownloadAckStreamGone: a download's ack stream that goes away (the
// tab cancels it) ends its run, counted as a reset; the server's writes
// to the download stop with it.
func TestDownloadAckStreamGone(t *testing.T) {
	p := startInProc(t, "--tcp-addr", "")
	p.logIfFailed(t)
	c := h2cClient(t)
	id, down := startDownload(t, context.Background(), c, p.http, flow.Hello{Direction: flow.Down, PayloadSize: 16384, Rate: 50})
	defer down.Close()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.http+"/h2/acks?download="+id, pr)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	if _, err := io.ReadFull(down, make([]byte, 5)); err != nil { // the run started
		t.Fatal(err)
	}
	cancel() // RST_STREAM of the ack stream
	if _, err := io.Copy(io.Discard, down); err != nil {
		t.Logf("the download ended: %v", err)
	}
	p.waitMetric(t, `bp_connection_errors_total{protocol="http2",reason="reset"}`, 1)
	p.waitMetric(t, `bp_connections{protocol="http2"}`, 0)
}

// TestDownloadBodyNeverEnds: a download whose body goes on after its
// hello without ending (no END_STREAM) is refused within the hello
// timeout, counted as a hello error, and holds no run.
func TestDownloadBodyNeverEnds(t *testing.T) {
	p := startInProc(t, "--tcp-addr", "", "--hello-timeout", "300ms")
	p.logIfFailed(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte(helloLineOf(t, flow.Hello{Direction: flow.Down, PayloadSize: 1024})))
	start := time.Now()
	resp, err := h2cClient(t).Post("http://"+p.http+"/h2?acks=post", "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "did not end within 300ms") || time.Since(start) > 3*time.Second {
		t.Errorf("a download whose body never ends: HTTP %d %q after %v, want 400 within the 300ms hello timeout", resp.StatusCode, b, time.Since(start))
	}
	p.waitMetric(t, `bp_connection_errors_total{protocol="http2",reason="hello"}`, 1)
	p.waitMetric(t, `bp_connections{protocol="http2"}`, 0)
}
