package flowtest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// ServeTCP listens on 127.0.0.1:0 with opts and, for every connection,
// reads its hello (waiting at most helloTimeout) and calls handle in a
// goroutine of its own; err is AcceptTCP's, with c nil. At cleanup the
// listener closes, ctx is cancelled and every handler is waited for. It is
// the accept loop of bp-server and bp-relay in miniature, for tests.
func ServeTCP(tb testing.TB, opts flow.SocketOptions, helloTimeout time.Duration,
	handle func(ctx context.Context, h *flow.Hello, c flow.Conn, err error)) string {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := flow.ListenTCP(ctx, "127.0.0.1:0", opts)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); cancel(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, c, err := flow.AcceptTCP(nc, helloTimeout)
				if err != nil {
					nc.Close()
				}
				handle(ctx, h, c, err)
			}()
		}
	}()
	return ln.Addr().String()
}

// Send delivers v on ch unless ctx ends first, so a handler never outlives
// a test that stopped reading its results.
func Send[T any](ctx context.Context, ch chan<- T, v T) {
	select {
	case ch <- v:
	case <-ctx.Done():
	}
}

// ServerResult is what the test server's session ended with.
type ServerResult struct {
	Hello *flow.Hello
	Snap  flow.Snapshot
	Err   error
}

// ServerPlan is what bp-server does with a hello: read when the client
// writes, write what the hello asks for when the client reads.
func ServerPlan(h *flow.Hello, read flow.ReadSettings) flow.Plan {
	p := flow.Plan{Read: read, PeerWrites: h == nil || h.Direction.ClientWrites()}
	if h != nil && h.Direction.ServerWrites() {
		p.Write = &flow.WritePlan{Payload: bytes.Repeat([]byte{'x'}, max(h.PayloadSize, 1)), TotalBytes: h.TotalBytes, Duration: h.Duration(), Rate: h.Rate}
	}
	return p
}

// StartTCPServer serves one flow session per accepted connection on
// 127.0.0.1:0, with opts, and sends each result on the returned channel.
func StartTCPServer(tb testing.TB, read flow.ReadSettings, opts flow.SocketOptions) (string, <-chan ServerResult) {
	tb.Helper()
	results := make(chan ServerResult, 16)
	addr := ServeTCP(tb, opts, time.Second, func(ctx context.Context, h *flow.Hello, c flow.Conn, err error) {
		if err != nil {
			Send(ctx, results, ServerResult{Err: err})
			return
		}
		snap, err := flow.NewSession(c, ServerPlan(h, read), nil).Run(ctx)
		Send(ctx, results, ServerResult{Hello: h, Snap: snap, Err: err})
	})
	return addr, results
}

// StartWSServer is StartTCPServer for WebSocket; it returns the ws:// URL.
func StartWSServer(tb testing.TB, read flow.ReadSettings) (string, <-chan ServerResult) {
	tb.Helper()
	results := make(chan ServerResult, 16)
	up := flow.NewUpgrader()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, c, err := up.Accept(w, r)
		if err != nil {
			results <- ServerResult{Err: err}
			return
		}
		snap, err := flow.NewSession(c, ServerPlan(h, read), nil).Run(context.Background())
		results <- ServerResult{Hello: h, Snap: snap, Err: err}
	}))
	tb.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", results
}

// ClientPlan is bp-client's plan for dir: it initiates, and writes total
// bytes in 64 KiB payloads when it writes.
func ClientPlan(dir flow.Direction, total int64) flow.Plan {
	p := flow.Plan{Initiator: true, PeerWrites: dir.ServerWrites()}
	if dir.ClientWrites() {
		p.Write = &flow.WritePlan{Payload: bytes.Repeat([]byte{'y'}, 64<<10), TotalBytes: total}
	}
	return p
}

// Payload is bp-client's payload of size bytes.
func Payload(size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte('a' + i%26)
	}
	return p
}
