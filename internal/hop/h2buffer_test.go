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
)

// TestStreamBufferedBytes: bp_stream_buffered_bytes{protocol="http2"} is
// what a client's DATA frames carried minus what the handler read, to the
// byte. The client is a raw HTTP/2 framer on a real socket, so its count
// of DATA payload is independent of the server's tap; the handler's is
// its own io.ReadFull. Closing the connection takes its bytes off.
func TestStreamBufferedBytes(t *testing.T) {
	const sent, read = 60000, 12345 // within the default 65535 windows: no WINDOW_UPDATE needed
	reg := prometheus.NewRegistry()
	m := NewH2Metrics(reg)
	RegisterStreamBuffers(reg, &m.buffered, nil)
	readDone, release := make(chan error, 1), make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		countBody(r)
		_, err := io.ReadFull(r.Body, make([]byte, read))
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
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", HTTP2Path}, {":authority", "bp"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	total := 0
	for total < sent {
		n := min(7001, sent-total) // frames cut off anywhere
		if err := fr.WriteData(1, false, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	select {
	case err := <-readDone:
		if err != nil {
			t.Fatalf("handler read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler never read its bytes")
	}
	waitBuffered(t, reg, sent-read, "after the client sent and the handler read")
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
