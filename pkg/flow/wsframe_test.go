package flow_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// wsFrame is one frame as read off the wire.
type wsFrame struct {
	fin     bool
	opcode  byte
	masked  bool
	payload []byte // unmasked
}

// readWSFrame parses one frame (RFC 6455 5.2) by hand, so that the test
// sees the frames the client sent, not the messages gorilla assembles.
func readWSFrame(r io.Reader) (wsFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return wsFrame{}, err
	}
	f := wsFrame{fin: h[0]&0x80 != 0, opcode: h[0] & 0x0f, masked: h[1]&0x80 != 0}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	var key [4]byte
	if f.masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return f, err
		}
	}
	if n > 1<<24 {
		return f, fmt.Errorf("frame of %d bytes", n)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return f, err
	}
	for i := range f.payload {
		f.payload[i] ^= key[i%4]
	}
	return f, nil
}

// rawWSServer accepts one connection, answers its upgrade by hand and
// sends every frame it reads to the channel.
func rawWSServer(t *testing.T) (string, <-chan wsFrame) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	frames := make(chan wsFrame, 64)
	go func() {
		defer close(frames)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			base64.StdEncoding.EncodeToString(sum[:]))
		for {
			f, err := readWSFrame(br)
			if err != nil {
				return
			}
			frames <- f
		}
	}()
	return "ws://" + ln.Addr().String() + "/ws", frames
}

// TestWebSocketClientFrames: the client sends a payload larger than
// flow.WebSocketFrameSize as one message of several masked frames of that
// size (the first binary, the rest continuations, the last with FIN), and
// the bytes arrive whole and in order.
func TestWebSocketClientFrames(t *testing.T) {
	url, frames := rawWSServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := flow.DialWebSocket(ctx, url, flow.Hello{RunID: "frames", PayloadSize: 128 << 10}, flow.SocketOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, 128<<10)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	if n, err := c.WritePayload(payload); err != nil || n != len(payload) {
		t.Fatalf("WritePayload = %d, %v", n, err)
	}
	hello := <-frames
	if hello.opcode != 1 || !hello.fin || !hello.masked {
		t.Fatalf("hello frame: opcode %d fin %v masked %v, want a masked final text frame", hello.opcode, hello.fin, hello.masked)
	}
	want := len(payload) / flow.WebSocketFrameSize
	var got []byte
	for i := 0; i < want; i++ {
		var f wsFrame
		select {
		case f = <-frames:
		case <-ctx.Done():
			t.Fatalf("frame %d of %d did not arrive", i+1, want)
		}
		wantOp := byte(0) // continuation
		if i == 0 {
			wantOp = 2 // binary
		}
		if f.opcode != wantOp || f.fin != (i == want-1) || !f.masked || len(f.payload) != flow.WebSocketFrameSize {
			t.Fatalf("frame %d: opcode %d fin %v masked %v, %d bytes; want opcode %d fin %v masked, %d bytes",
				i+1, f.opcode, f.fin, f.masked, len(f.payload), wantOp, i == want-1, flow.WebSocketFrameSize)
		}
		got = append(got, f.payload...)
	}
	if string(got) != string(payload) {
		t.Fatal("the frames' payload differs from what was written")
	}
}

// TestWebSocketClientWriteBufferPooled: a client connection between
// messages holds no write buffer (wsClientWriteBuffers): 100 connections
// that wrote a 1 KiB message each, both ends in this process, hold under
// 128 KiB of heap each, where a write buffer of its own per connection
// (WebSocketFrameSize) made them about 64 KiB more.
func TestWebSocketClientWriteBufferPooled(t *testing.T) {
	const conns = 100
	up := flow.NewUpgrader()
	var read atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, c, err := up.Accept(rw, r)
		if err != nil {
			return
		}
		defer c.Close()
		go func() { <-done; c.Close() }()
		buf := make([]byte, 4<<10)
		for {
			n, _, err := c.Read(buf)
			read.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	defer close(done)
	heapInUse := func() uint64 {
		runtime.GC()
		runtime.GC() // a pool's buffers go at the second
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before := heapInUse()
	payload := make([]byte, 1<<10)
	var clients []flow.Conn
	for range conns {
		c, err := flow.DialWebSocket(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", flow.Hello{RunID: "pool", PayloadSize: len(payload)}, flow.SocketOptions{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.WritePayload(payload); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	for read.Load() < conns*int64(len(payload)) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if got := read.Load(); got != conns*int64(len(payload)) {
		t.Fatalf("the server read %d bytes, want %d", got, conns*len(payload))
	}
	per := float64(heapInUse()-before) / conns / 1024
	runtime.KeepAlive(clients)
	t.Logf("%.1f KiB of heap a connection, both ends", per)
	if per > 128 {
		t.Errorf("%.1f KiB of heap a connection, both ends: want under 128 (a write buffer each is %d KiB more)", per, flow.WebSocketFrameSize>>10)
	}
}
