package flow_test

import (
	"bytes"
	"net"
	"reflect"
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
