package flow_test

import (
	"bytes"
	"errors"
	"net"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// TestTCPFramesInPieces: the framed reader's readv (a frame's end and the
// next header in one call, vecread_linux.go) keeps headers that arrive in
// pieces, control frames between data frames, and frames the size of the
// read, as the reference decoder reads them, whatever the cuts.
func TestTCPFramesInPieces(t *testing.T) {
	const readSize = 4 << 10
	raw := []byte("BP/1 {\"type\":\"hello\",\"version\":1}\n")
	for i, size := range []int{readSize, readSize, 1, readSize - 1, readSize + 3, 7, readSize, 2 * readSize, 5} {
		body := bytes.Repeat([]byte{byte('a' + i)}, size)
		raw = append(raw, frame('D', body)...)
		if i%3 == 1 {
			raw = append(raw, frame('C', []byte(`{"type":"ack","bytes":1}`))...)
		}
	}
	raw = append(raw, frame('C', []byte(`{"type":"fin","bytes":0}`))...)
	want := referenceDecode(raw)
	for _, cut := range []int{1, 3, 5, 6, 1000, readSize + 5, readSize + 6, len(raw)} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err := ln.Accept()
		ln.Close()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for i, b := 0, raw; len(b) > 0; i++ {
				// The hello alone first, so the reader reads the socket
				// itself (readv), not bytes that came with the hello.
				n := min(cut, len(b))
				if len(b) == len(raw) {
					n = bytes.IndexByte(raw, '\n') + 1
				}
				if _, err := client.Write(b[:n]); err != nil {
					return
				}
				b = b[n:]
				if i%16 == 0 {
					time.Sleep(50 * time.Microsecond) // let the reader catch up, mid-frame
				}
			}
			client.(*net.TCPConn).CloseWrite()
		}()
		_, c, err := flow.AcceptTCP(server, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var payload []byte
		var controls []flow.Control
		buf := make([]byte, readSize)
		var end error
		for end == nil {
			n, ctl, err := c.Read(buf)
			payload = append(payload, buf[:n]...)
			if ctl.Type != "" {
				controls = append(controls, ctl)
			}
			end = err
		}
		c.Close()
		client.Close()
		if !bytes.Equal(payload, want.payload) {
			t.Errorf("cut %d: %d payload bytes, reference %d", cut, len(payload), len(want.payload))
		}
		if !reflect.DeepEqual(controls, want.controls) {
			t.Errorf("cut %d: controls %+v, reference %+v", cut, controls, want.controls)
		}
		if k := endKind(end); k != want.end {
			t.Errorf("cut %d: ended with %v (%s), reference %s", cut, end, k, want.end)
		}
	}
}

// TestTCPReadAfterWait: a read that found the socket empty takes what
// follows the header in the same readv once bytes arrive (tcpConn.spec), so
// frames written one at a time into an empty socket, of the last data
// frame's size or not, with control frames before, between and after them,
// read as the reference decoder reads them, at any read size.
func TestTCPReadAfterWait(t *testing.T) {
	ack := frame('C', []byte(`{"type":"ack","bytes":1024}`))
	kib := frame('D', bytes.Repeat([]byte{'k'}, 1024))
	cat := func(fs ...[]byte) []byte { return bytes.Join(fs, nil) }
	bursts := [][]byte{
		kib, kib, ack, kib, // alone: each read after a wait ends where the frame does
		cat(kib, ack), // a frame, then a control frame behind it
		cat(ack, kib), // a control frame first: the data frame waits ahead (over 256 bytes)
		cat(frame('D', bytes.Repeat([]byte{'s'}, 300)), kib), // shorter than the last: the rest waits ahead
		cat(frame('D', []byte("tiny")), ack),                 // what waits ahead fits the control buffer
		frame('D', bytes.Repeat([]byte{'b'}, 5000)),          // longer than the read
		kib, kib, frame('D', nil), kib,
		frame('C', []byte(`{"type":"fin","bytes":0}`)),
	}
	for _, readSize := range []int{1, 64, 300, 1024, 4096} {
		raw, payload, controls, end := readBursts(t, bursts, readSize)
		want := referenceDecode(raw)
		if !bytes.Equal(payload, want.payload) {
			t.Errorf("read size %d: %d payload bytes, reference %d", readSize, len(payload), len(want.payload))
		}
		if !reflect.DeepEqual(controls, want.controls) {
			t.Errorf("read size %d: controls %+v, reference %+v", readSize, controls, want.controls)
		}
		if k := endKind(end); k != want.end {
			t.Errorf("read size %d: ended with %v (%s), reference %s", readSize, end, k, want.end)
		}
	}
	// A refusal after a wait: its line is read through what came with it.
	_, _, _, end := readBursts(t, [][]byte{kib, kib, []byte(flow.TCPHelloPrefix + "refused: too many\n")}, 4096)
	var refused flow.RefusedError
	if !errors.As(end, &refused) || refused.Reason != "too many" {
		t.Errorf("refusal after a wait: ended with %v, want RefusedError %q", end, "too many")
	}
}

// readBursts writes the hello, then each burst in one write once the
// reader has read everything before it and waits in an empty socket, and
// reads the stream with Read(readSize) to its end.
func readBursts(t *testing.T, bursts [][]byte, readSize int) (raw, payload []byte, controls []flow.Control, end error) {
	t.Helper()
	c, client := afterHello(t)
	hello := []byte(testHello)
	var read atomic.Int64 // payload bytes and control frames read, as the reference counts them
	go func() {
		sent := append([]byte{}, hello...)
		for _, b := range bursts {
			want := referenceDecode(sent)
			for deadline := time.Now().Add(5 * time.Second); read.Load() < int64(len(want.payload)+len(want.controls)) && time.Now().Before(deadline); {
				time.Sleep(100 * time.Microsecond)
			}
			time.Sleep(2 * time.Millisecond) // the reader is back in its read, waiting
			if _, err := client.Write(b); err != nil {
				return
			}
			sent = append(sent, b...)
		}
		client.(*net.TCPConn).CloseWrite()
	}()
	payload, controls, end = readToEnd(c, readSize, func(n int) { read.Store(int64(n)) })
	raw = append([]byte{}, hello...)
	for _, b := range bursts {
		raw = append(raw, b...)
	}
	return raw, payload, controls, end
}

// loopbackPair is a connected pair of loopback TCP sockets, closed at the
// test's end.
func loopbackPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		client.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}

// TestTCPReadAcross: a read whose buffer holds more than the current
// frame's rest takes the next frame's payload too, without its header
// (tcpConn.readAcross), so frames waiting whole in the socket, of the
// last data frame's size or not, with control frames, an empty frame, a
// bad header or a refusal between them, read as the reference decoder
// reads them, at any read size; and the payload before a bad header or a
// refusal is read before the error.
func TestTCPReadAcross(t *testing.T) {
	kib := frame('D', bytes.Repeat([]byte{'k'}, 1024))
	ack := frame('C', []byte(`{"type":"ack","bytes":1024}`))
	cat := func(fs ...[]byte) []byte { return bytes.Join(fs, nil) }
	stream := cat(kib, kib, ack, kib, kib,
		frame('D', bytes.Repeat([]byte{'s'}, 300)), kib, // shorter than the last: the rest waits ahead
		frame('D', bytes.Repeat([]byte{'b'}, 5000)), kib, // longer than the last
		frame('D', nil), kib, kib, ack, ack, kib,
		frame('D', []byte("tiny")), frame('D', []byte("tiny")), kib)
	for _, tc := range []struct {
		name string
		tail []byte
	}{
		{"fin", frame('C', []byte(`{"type":"fin","bytes":0}`))},
		{"bad header", cat([]byte{'X', 0, 0, 0, 1}, kib)},
		{"too large", cat([]byte{'D', 0xff, 0xff, 0xff, 0xff}, kib)},
		{"cut off", kib[:600]},
	} {
		for _, readSize := range []int{1, 700, 1029, 2048, 4096, 64 << 10} {
			raw, payload, controls, end := readWhole(t, cat(stream, tc.tail), readSize)
			want := referenceDecode(raw)
			if !bytes.Equal(payload, want.payload) {
				t.Errorf("%s, read size %d: %d payload bytes, reference %d", tc.name, readSize, len(payload), len(want.payload))
			}
			if !reflect.DeepEqual(controls, want.controls) {
				t.Errorf("%s, read size %d: controls %+v, reference %+v", tc.name, readSize, controls, want.controls)
			}
			if k := endKind(end); k != want.end {
				t.Errorf("%s, read size %d: ended with %v (%s), reference %s", tc.name, readSize, end, k, want.end)
			}
		}
	}
	for _, readSize := range []int{1029, 4096} {
		_, payload, _, end := readWhole(t, cat(kib, kib, []byte(flow.TCPHelloPrefix+"refused: too many\n")), readSize)
		var refused flow.RefusedError
		if len(payload) != 2048 || !errors.As(end, &refused) || refused.Reason != "too many" {
			t.Errorf("refusal behind two frames, read size %d: %d payload bytes, ended with %v; want 2048, then RefusedError %q", readSize, len(payload), end, "too many")
		}
	}
}

// readWhole writes the hello, then, once the reader has read it, all of
// stream in one write, and reads the stream with Read(readSize) to its end
// once it all waits in the socket.
func readWhole(t *testing.T, stream []byte, readSize int) (raw, payload []byte, controls []flow.Control, end error) {
	t.Helper()
	payload, controls, end = readToEnd(waitingInSocket(t, stream), readSize, nil)
	return append([]byte(testHello), stream...), payload, controls, end
}

// readToEnd reads c with Read(readSize) until it returns an error, and
// calls each (when not nil) after every read with the payload bytes and
// control frames read so far, as the reference decoder counts them.
func readToEnd(c flow.Conn, readSize int, each func(int)) (payload []byte, controls []flow.Control, end error) {
	buf := make([]byte, readSize)
	for end == nil {
		var n int
		var ctl flow.Control
		n, ctl, end = c.Read(buf)
		payload = append(payload, buf[:n]...)
		if ctl.Type != "" {
			controls = append(controls, ctl)
		}
		if each != nil {
			each(len(payload) + len(controls))
		}
	}
	return payload, controls, end
}

// testHello is the hello the framed-reader tests send.
const testHello = "BP/1 {\"type\":\"hello\",\"version\":1}\n"

// afterHello is a loopback connection whose client end sent the hello
// and whose server end, c, read it (AcceptTCP). Both are closed at the
// test's end.
func afterHello(t *testing.T) (c flow.Conn, client net.Conn) {
	t.Helper()
	server, client := loopbackPair(t)
	if _, err := client.Write([]byte(testHello)); err != nil {
		t.Fatal(err)
	}
	_, c, err := flow.AcceptTCP(server, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, client
}

// waitingInSocket is afterHello's c once the client has written all of
// stream in one write and ended its stream: on loopback all of it waits
// in the socket when this returns.
func waitingInSocket(t *testing.T, stream []byte) flow.Conn {
	t.Helper()
	c, client := afterHello(t)
	if _, err := client.Write(stream); err != nil {
		t.Fatal(err)
	}
	client.(*net.TCPConn).CloseWrite()
	time.Sleep(5 * time.Millisecond)
	return c
}
