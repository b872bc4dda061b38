package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/protobuf/proto"
)

// TestStreamResetBuffered: a stream reset mid-run takes its unread bytes
// out of bp-server's bp_stream_buffered_bytes at once, the connection
// still open and the stream beside it still holding its own. The server
// reads nothing past the hellos (paused from the start), so what its
// streams buffer is what the clients sent after them, counted on the
// clients' side: DATA payload written by a raw HTTP/2 framer, and gRPC
// messages as gRPC frames them (a 5-byte prefix and the encoding).
func TestStreamResetBuffered(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--pause-after", "0s", "--pause-for", "60s", "--sample-interval", "0", "--log-interval", "0")
	t.Run("http2", func(t *testing.T) {
		r := dialRawH2(t, srv.HTTPAddr)
		r.open(1, "reset-h2-a")
		r.open(3, "reset-h2-b")
		waitOpened(t, srv, "reset-h2-a", "reset-h2-b")
		wantBuffered(t, srv, "http2", 0, "after the hellos were read")
		r.payload(1, 200000) // a framed-TCP data frame: 5 bytes of header, then the payload
		r.payload(3, 100000)
		wantBuffered(t, srv, "http2", 200005+100005, "with both streams' payload sent and unread")
		if err := r.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
			t.Fatal(err)
		}
		wantBuffered(t, srv, "http2", 100005, "after the client reset stream 1")
		r.nc.Close()
		wantBuffered(t, srv, "http2", 0, "after the connection closed")
	})
	t.Run("grpc", func(t *testing.T) {
		client := grpcPeer(t, srv.GRPCAddr)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		open := func(run string, k int32) (context.CancelFunc, func(n int) int) {
			sctx, scancel := context.WithCancel(ctx)
			rpc, err := client.Upload(sctx)
			if err != nil {
				t.Fatal(err)
			}
			hello := helloMsg(run)
			hello.GetHello().Stream = k // the streams' places on the connection, as bp-client's hellos name them
			if err := rpc.Send(hello); err != nil {
				t.Fatal(err)
			}
			return scancel, func(n int) int { // sends n payload messages of 16000 bytes; their wire size
				m := payloadMsg(16000)
				for range n {
					if err := rpc.Send(m); err != nil {
						t.Fatal(err)
					}
				}
				return n * (5 + proto.Size(m))
			}
		}
		// Each stream within grpc-go's first 64 KiB window.
		resetA, sendA := open("reset-grpc-a", 0)
		resetB, sendB := open("reset-grpc-b", 1)
		waitOpened(t, srv, "reset-grpc-a", "reset-grpc-b")
		wantBuffered(t, srv, "grpc", 0, "after the hellos were read")
		a, b := sendA(3), sendB(2)
		t.Logf("stream a: %d bytes sent unread, b: %d", a, b)
		wantBuffered(t, srv, "grpc", a+b, "with both streams' payload sent and unread")
		resetA() // RST_STREAM (CANCEL)
		wantBuffered(t, srv, "grpc", b, "after the client reset stream a")
		resetB()
		wantBuffered(t, srv, "grpc", 0, "after the client reset stream b")
	})
}

// waitOpened waits for the server's "connection opened" line of each run.
func waitOpened(t *testing.T, srv *Server, runs ...string) {
	t.Helper()
	for _, run := range runs {
		eventually(t, 10*time.Second, func() string {
			for _, l := range srv.Logs("connection opened") {
				if l["run"] == run {
					return ""
				}
			}
			return "run " + run + " not opened"
		})
	}
}

// wantBuffered waits (up to 2 s) for the server's
// bp_stream_buffered_bytes{protocol} to be want, to the byte.
func wantBuffered(t *testing.T, srv *Server, protocol string, want int, when string) {
	t.Helper()
	began := time.Now()
	eventually(t, 2*time.Second, func() string {
		if got := scrape(t, srv.MetricsURL()).Value(t, "bp_stream_buffered_bytes", "protocol", protocol); got != float64(want) {
			return fmt.Sprintf("%s: bp_stream_buffered_bytes{protocol=%q} = %v, want %d", when, protocol, got, want)
		}
		return ""
	})
	t.Logf("%s: bp_stream_buffered_bytes{protocol=%q} = %d (within %s)", when, protocol, want, time.Since(began).Round(time.Millisecond))
}
