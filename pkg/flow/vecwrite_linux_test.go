package flow

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair is a connected pair of loopback TCP sockets.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// TestVecWriterWhole: the raw writev writes header and payload whole and
// in order through partial writes (a peer that reads slowly, a small send
// buffer), and counts every byte.
func TestVecWriterWhole(t *testing.T) {
	c, s := tcpPair(t)
	_ = c.SetWriteBuffer(16 << 10)
	w := newVecWriter(c)
	hdr := []byte{1, 2, 3, 4, 5}
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	got := make(chan []byte)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 7000)
		for {
			n, err := s.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				got <- b.Bytes()
				return
			}
			time.Sleep(20 * time.Microsecond)
		}
	}()
	n, err := w.write(hdr, payload)
	if err != nil || n != len(hdr)+len(payload) {
		t.Fatalf("write: %d, %v; want %d, nil", n, err, len(hdr)+len(payload))
	}
	c.CloseWrite()
	b := <-got
	if !bytes.Equal(b, append(hdr, payload...)) {
		t.Fatalf("peer read %d bytes, not the %d written in order", len(b), len(hdr)+len(payload))
	}
}

// TestVecWriterDeadline: a write to a peer that does not read ends at the
// write deadline with the deadline's error, and n is exactly what the
// peer then reads.
func TestVecWriterDeadline(t *testing.T) {
	c, s := tcpPair(t)
	w := newVecWriter(c)
	payload := make([]byte, 64<<20)
	_ = c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := w.write([]byte{9, 9, 9, 9, 9}, payload)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write: %d, %v; want the deadline's error", n, err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Errorf("error %v is not a write *net.OpError", err)
	}
	if n <= 0 || n >= len(payload) {
		t.Fatalf("wrote %d bytes before the deadline", n)
	}
	c.Close()
	m, err := io.Copy(io.Discard, s)
	if err != nil || m != int64(n) {
		t.Fatalf("peer read %d bytes (%v); the writer counted %d", m, err, n)
	}
}

// TestRawSocketClosed: rawSocket's Read and Write report a closed socket
// as net.Conn does (net.ErrClosed), and EOF at the peer's end.
func TestRawSocketClosed(t *testing.T) {
	c, s := tcpPair(t)
	rc := newRawSocket(c)
	if _, ok := rc.(*rawSocket); !ok {
		t.Fatalf("newRawSocket(%T) = %T", c, rc)
	}
	if _, err := rc.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := io.ReadFull(s, buf[:2]); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if n, err := rc.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("read after the peer closed: %d, %v; want 0, EOF", n, err)
	}
	rc.Close()
	if _, err := rc.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after close: %v; want net.ErrClosed", err)
	}
	if _, err := rc.Write(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after close: %v; want net.ErrClosed", err)
	}
}

// TestRawCallsAllocateNothing: the framed writer's writev and the reader's
// readv run on every payload write and read, so they hold their iovecs
// and callbacks and allocate nothing per call (as their comments say).
func TestRawCallsAllocateNothing(t *testing.T) {
	c, s := tcpPair(t)
	w, r := newVecWriter(c), newVecReader(s)
	hdr, payload := make([]byte, frameHeader), make([]byte, 4096)
	a, b := make([]byte, len(payload)), make([]byte, frameHeader)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := w.write(hdr, payload); err != nil {
			t.Fatal(err)
		}
		for left := len(hdr) + len(payload); left > 0; {
			n, err := r.read(a, b)
			if err != nil {
				t.Fatal(err)
			}
			left -= n
		}
	})
	if allocs != 0 {
		t.Errorf("a raw writev and its reads allocate %.1f times, want 0", allocs)
	}
}
