package flow_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	pb "github.com/go-backpressure/go-backpressure/proto/backpressure/v1"
)

// TestGRPCStreamBuffered: a gRPC server's StreamBuffer (exported as
// bp_stream_buffered_bytes{protocol="grpc"}) holds what the client's
// messages took on the wire beyond what the handler read, to the byte:
// the count comes from the server's tap (DATA payload), the reference from
// the client's side (each message it sent, as gRPC frames it: a 5-byte
// prefix and its encoding). The client's reset of the stream takes its
// bytes off at once, the connection open and the handler still holding
// the stream (it waits for the test's end, not for its context).
func TestGRPCStreamBuffered(t *testing.T) {
	const payload, sent, read = 3001, 15, 4 // 15 messages fit grpc-go's first 64 KiB windows
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var buf flow.StreamBuffer
	readDone, release := make(chan error, 1), make(chan struct{})
	srv := flow.NewGRPCServer(flow.GRPCServerOptions{HelloTimeout: 5 * time.Second, Base: ctx, Buffered: &buf},
		func(ctx context.Context, _ *flow.Hello, c flow.Conn, _ string) {
			p := make([]byte, payload)
			for i := 0; i < read; i++ {
				if n, _, err := c.Read(p); err != nil || n != payload {
					readDone <- err
					return
				}
			}
			readDone <- nil
			<-release
		})
	go srv.Serve(ln)
	defer srv.Stop(context.Background())
	defer close(release)

	target := flow.Target{Protocol: flow.GRPC, Addr: ln.Addr().String()}
	hello := flow.Hello{RunID: "buffered", Direction: flow.Up, PayloadSize: payload}
	c, err := flowtest.Dial(t, ctx, target, hello, flow.SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < sent; i++ {
		if _, err := c.WritePayload(make([]byte, payload)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-readDone:
		if err != nil {
			t.Fatalf("handler read: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the handler never read its messages")
	}
	wire := 5 + proto.Size(&pb.Message{Kind: &pb.Message_Payload{Payload: make([]byte, payload)}})
	waitStreamBuffer(t, &buf, int64((sent-read)*wire), "after the client sent and the handler read")
	c.(flow.Aborter).Abort("test over") // RST_STREAM, with no linger left behind
	waitStreamBuffer(t, &buf, 0, "after the client reset the stream, its connection open")
	c.(interface{ NetConn() net.Conn }).NetConn().Close()
	waitStreamBuffer(t, &buf, 0, "after the connection closed")
}

// waitStreamBuffer waits (up to 5 s) for b to hold want bytes.
func waitStreamBuffer(t *testing.T, b *flow.StreamBuffer, want int64, when string) {
	t.Helper()
	var got int64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got = b.Bytes(); got == want {
			return
		}
	}
	t.Errorf("%s: stream buffers hold %d bytes, want %d", when, got, want)
}
