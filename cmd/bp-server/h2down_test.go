package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// The ack streams of browser downloads over HTTP/2 (internal/hop/h2down.go),
// driven the way the page drives them but from Go's HTTP/2 client over
// h2c: the download's body is its hello alone, its acks go on a sibling
// POST named by the id the download's answer carries; every misuse is
// refused with a clear status and counted.

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
	if t.Failed() {
		t.Logf("server log:\n%s", p.logs)
	}
}
