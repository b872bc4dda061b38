package flow_test

// Benchmarks of the hot paths over real loopback sockets. Each group has a
// bare reference in the same run (a plain net.Conn loop), so the numbers to
// read are ratios, not absolute speeds: the machine is shared. See
// docs/BENCHMARKS.md.
//
//	go test -run '^$' -bench . -benchmem -count 5 ./pkg/flow/

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// benchPayload is bp-client's default payload size.
const benchPayload = 64 << 10

// discardListener accepts TCP connections on loopback and reads everything
// they send into io.Discard: the fastest possible reader, so a benchmark
// measures the writer.
func discardListener(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// discardWSServer upgrades to WebSocket and then discards the raw bytes the
// client sends (frames, masked payload) without unmasking them, so the
// client's framing and masking are all that is measured.
func discardWSServer(tb testing.TB) string {
	tb.Helper()
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		io.Copy(io.Discard, ws.NetConn())
	}))
	tb.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

// noControl hides a framed connection's control messages from a session:
// the writer sends no fin and waits for no ack, so it only writes.
type noControl struct{ flow.Conn }

func (noControl) SpeaksControl() bool             { return false }
func (noControl) WriteControl(flow.Control) error { return nil }

func dialFramed(tb testing.TB, proto flow.Protocol) flow.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hello := flow.Hello{RunID: "bench", PayloadSize: benchPayload}
	var c flow.Conn
	var err error
	if proto == flow.TCP {
		c, err = flow.DialTCP(ctx, discardListener(tb), hello, flow.SocketOptions{})
	} else {
		c, err = flow.DialWebSocket(ctx, discardWSServer(tb), hello, flow.SocketOptions{}, nil)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkWriteLoop: the session's instrumented write loop (timing every
// write, observer calls, byte counters) against a bare net.Conn write loop,
// both into a reader that discards at full speed. The ratio of their MB/s is
// what the write loop costs on top of the system call.
func BenchmarkWriteLoop(b *testing.B) {
	payload := flowtest.Payload(benchPayload)
	b.Run("bare", func(b *testing.B) {
		c, err := net.Dial("tcp", discardListener(b))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Write(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, proto := range []flow.Protocol{flow.TCP, flow.WebSocket} {
		b.Run("session-"+string(proto), func(b *testing.B) {
			c := noControl{dialFramed(b, proto)}
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			b.ResetTimer()
			plan := flow.Plan{Initiator: true, Write: &flow.WritePlan{Payload: payload, TotalBytes: int64(b.N) * int64(len(payload))}}
			snap, err := flow.NewSession(c, plan, nil).Run(context.Background())
			if err != nil || snap.Written != plan.Write.TotalBytes {
				b.Fatalf("wrote %d of %d: %v", snap.Written, plan.Write.TotalBytes, err)
			}
		})
	}
}

// BenchmarkFraming: one WritePayload call per iteration, TCP framing (a
// 5-byte header and the payload in one writev) against WebSocket framing
// (gorilla's frame header, and the client's masking: a copy of every byte
// XORed into the write buffer), for several payload sizes. The reader only
// discards raw bytes.
func BenchmarkFraming(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		payload := flowtest.Payload(size)
		for _, proto := range []flow.Protocol{flow.TCP, flow.WebSocket} {
			b.Run(string(proto)+"/"+sizeName(size), func(b *testing.B) {
				c := dialFramed(b, proto)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.WritePayload(payload); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}

// BenchmarkReader: the read side at full speed. bare reads a raw stream
// with net.Conn.Read; tcp and websocket read a framed stream (written by a
// flow connection as fast as it can) with Conn.Read, which for WebSocket
// includes unmasking. Reads are DefaultReadSize (64 KiB).
func BenchmarkReader(b *testing.B) {
	payload := flowtest.Payload(benchPayload)
	b.Run("bare", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		w, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		r, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		go func() {
			for {
				if _, err := w.Write(payload); err != nil {
					return
				}
			}
		}()
		readBench(b, func(p []byte) (int, error) { return r.Read(p) })
	})
	for _, proto := range []flow.Protocol{flow.TCP, flow.WebSocket} {
		b.Run(string(proto), func(b *testing.B) {
			r := acceptedPair(b, proto, func(w flow.Conn) {
				for {
					if _, err := w.WritePayload(payload); err != nil {
						return
					}
				}
			})
			readBench(b, func(p []byte) (int, error) {
				n, ctl, err := r.Read(p)
				if ctl.Type != "" {
					return 0, errors.New("unexpected control message")
				}
				return n, err
			})
		})
	}
}

// readBench reads benchPayload bytes per iteration with 64 KiB reads.
func readBench(b *testing.B, read func([]byte) (int, error)) {
	buf := make([]byte, flow.DefaultReadSize)
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	for b.Loop() {
		for got := 0; got < benchPayload; {
			n, err := read(buf[:min(len(buf), benchPayload-got)])
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
}

// acceptedPair dials a framed connection to a flow listener of proto, runs
// write on the dialled end in a goroutine, and returns the accepted end.
func acceptedPair(tb testing.TB, proto flow.Protocol, write func(flow.Conn)) flow.Conn {
	tb.Helper()
	ctx := context.Background()
	hello := flow.Hello{RunID: "bench", PayloadSize: benchPayload}
	accepted := make(chan flow.Conn, 1)
	var w flow.Conn
	var err error
	if proto == flow.TCP {
		ln, lerr := net.Listen("tcp", "127.0.0.1:0")
		if lerr != nil {
			tb.Fatal(lerr)
		}
		defer ln.Close()
		go func() {
			nc, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			_, c, err := flow.AcceptTCP(nc, time.Second)
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}()
		w, err = flow.DialTCP(ctx, ln.Addr().String(), hello, flow.SocketOptions{})
	} else {
		up := flow.NewUpgrader()
		done := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			_, c, err := up.Accept(rw, r)
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
			<-done // the handler must outlive the hijacked connection's use
		}))
		tb.Cleanup(func() { close(done); srv.Close() })
		w, err = flow.DialWebSocket(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", hello, flow.SocketOptions{}, nil)
	}
	if err != nil {
		tb.Fatal(err)
	}
	r, ok := <-accepted
	if !ok {
		tb.Fatal("accept failed")
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); write(w) }()
	tb.Cleanup(func() { r.Close(); w.Close(); wg.Wait() })
	return r
}
