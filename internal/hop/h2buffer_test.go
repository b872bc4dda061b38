package hop

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// TestStreamBufferedBytes: bp_stream_buffered_bytes{protocol="http2"} is
// what a client's DATA frames carried minus what the handlers read, to the
// byte, per stream: the client is a raw HTTP/2 framer on a real socket,
// so its count of DATA payload is independent of the server's tap; the
// handlers' is their own io.ReadFull. Two streams, each begun with a
// hello line its handler claims its count by; the client resets the
// first (RST_STREAM) with its handler still running and the connection
// open: that stream's unread bytes leave the gauge at once, the other's
// stay. Closing the connection takes the rest off.
func TestStreamBufferedBytes(t *testing.T) {
	// Within the default 65535 windows: no WINDOW_UPDATE needed.
	const sent1, read1, sent3, read3 = 30000, 12345, 20000, 7000
	reg := prometheus.NewRegistry()
	m := NewH2Metrics(reg)
	RegisterStreamBuffers(reg, &m.buffered, nil)
	hellos := map[string]int{"a": read1, "b": read3} // run id: bytes its handler reads past the hello
	readDone, release := make(chan error, 2), make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := countBody(r)
		defer body.release()
		var line []byte // byte by byte: what the handler reads is what it counts
		for b := make([]byte, 1); len(line) < 200 && (len(line) == 0 || line[len(line)-1] != '\n'); line = append(line, b[0]) {
			if _, err := io.ReadFull(r.Body, b); err != nil {
				readDone <- err
				return
			}
		}
		hello, err := flow.ParseHello(line[len(flow.TCPHelloPrefix) : len(line)-1])
		if err != nil {
			readDone <- err
			return
		}
		body.claim(&hello)
		_, err = io.ReadFull(r.Body, make([]byte, hellos[hello.RunID]))
		readDone <- err
		<-release
	})}
	enableHTTP2(srv, m, func(string, string, ...any) {})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	defer close(release)

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go io.Copy(io.Discard, c) // the server's SETTINGS and acks
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	sentOn := func(id uint32, run string, sent int) int {
		var hdr bytes.Buffer
		enc := hpack.NewEncoder(&hdr)
		for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", HTTP2Path}, {":authority", "bp"}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hdr.Bytes(), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		hello := fmt.Sprintf(`%s{"type":"hello","version":1,"run_id":%q,"direction":"up"}`+"\n", flow.TCPHelloPrefix, run)
		if err := fr.WriteData(id, false, []byte(hello)); err != nil {
			t.Fatal(err)
		}
		total := 0
		for total < sent {
			n := min(7001, sent-total) // frames cut off anywhere
			if err := fr.WriteData(id, false, make([]byte, n)); err != nil {
				t.Fatal(err)
			}
			total += n
		}
		return len(hello) + sent
	}
	wire1, wire3 := sentOn(1, "a", sent1), sentOn(3, "b", sent3)
	for range 2 {
		select {
		case err := <-readDone:
			if err != nil {
				t.Fatalf("handler read: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a handler never read its bytes")
		}
	}
	// What each stream's handler left unread: its DATA less its hello
	// line and what it read past it.
	left1, left3 := sent1-read1, sent3-read3
	t.Logf("stream 1: %d DATA bytes, %d left unread; stream 3: %d, %d left", wire1, left1, wire3, left3)
	waitBuffered(t, reg, left1+left3, "after the client sent and the handlers read")
	if err := fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	waitBuffered(t, reg, left3, "after the client reset stream 1, its handler still running")
	c.Close()
	waitBuffered(t, reg, 0, "after the connection closed")
}

// waitBuffered waits (up to 5 s: the server's reader runs on its own) for
// the gathered bp_stream_buffered_bytes to say want for HTTP/2 (and 0 for
// gRPC, which this server does not serve).
func waitBuffered(t *testing.T, reg *prometheus.Registry, want int, when string) {
	t.Helper()
	page := fmt.Sprintf("# HELP bp_stream_buffered_bytes %s\n# TYPE bp_stream_buffered_bytes gauge\n"+
		"bp_stream_buffered_bytes{protocol=\"grpc\"} 0\nbp_stream_buffered_bytes{protocol=\"http2\"} %d\n", streamBufferedHelp, want)
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err = testutil.GatherAndCompare(reg, strings.NewReader(page), "bp_stream_buffered_bytes"); err == nil {
			return
		}
	}
	t.Errorf("%s: %v", when, err)
}
