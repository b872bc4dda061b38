package flow_test

import (
	"errors"
	"testing"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// TestFrameScanner: a scanner counts the payload and sees every control
// message of a framed stream however the reads cut it, and refuses what
// the TCP transport's reader refuses.
func TestFrameScanner(t *testing.T) {
	ack := flow.AppendControl(nil, flow.Control{Type: flow.Ack, Bytes: 7})
	fin := flow.AppendControl(nil, flow.Control{Type: flow.Fin, Bytes: 1000})
	var stream []byte
	stream = append(stream, frame('D', make([]byte, 600))...)
	stream = append(stream, frame('C', ack)...)
	stream = append(stream, frame('D', nil)...) // empty data frame
	stream = append(stream, frame('D', make([]byte, 400))...)
	stream = append(stream, frame('C', fin)...)

	for _, cut := range []int{1, 2, 3, 5, 7, 64, 601, len(stream)} { // read sizes
		var pt flow.FrameScanner
		payload := 0
		var seen []string
		for b := stream; len(b) > 0; {
			n := min(cut, len(b))
			err := pt.Scan(b[:n], func(m int) { payload += m }, func(c flow.Control) error {
				seen = append(seen, string(c.Type))
				if c.Type == flow.Fin && int64(payload) != c.Bytes {
					t.Errorf("reads of %d: fin of %d after %d payload bytes", cut, c.Bytes, payload)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("reads of %d: %v", cut, err)
			}
			b = b[n:]
		}
		if payload != 1000 || len(seen) != 2 || seen[0] != string(flow.Ack) || seen[1] != string(flow.Fin) || pt.MidFrame() {
			t.Errorf("reads of %d: payload %d, controls %v, mid-frame %v; want 1000, [ack fin], false", cut, payload, seen, pt.MidFrame())
		}
	}

	// A stream that stops inside a frame is mid-frame.
	var pt flow.FrameScanner
	if err := pt.Scan(stream[:3], func(int) {}, func(flow.Control) error { return nil }); err != nil || !pt.MidFrame() {
		t.Errorf("3 bytes of a header: err %v, mid-frame %v; want nil, true", err, pt.MidFrame())
	}

	bad := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"unknown frame type", frame('X', nil), nil},
		{"data frame too large", []byte{'D', 0xff, 0xff, 0xff, 0xff}, flow.ErrTooLarge},
		{"control frame too large", []byte{'C', 0, 1, 0, 0}, flow.ErrTooLarge},
		{"control frame that is no control", frame('C', []byte("{nope")), nil},
	}
	for _, c := range bad {
		var pt flow.FrameScanner
		err := pt.Scan(c.stream, func(int) {}, func(flow.Control) error { return nil })
		var pe flow.ProtocolError
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) || (c.want == nil && !errors.As(err, &pe)) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

// TestFrameScannerSkip: a relay that peeks a header (DataFrame), scans it
// and moves the payload past the scanner (Skip) leaves the scanner where
// Scan of the same bytes would: the next frame's control message is seen.
func TestFrameScannerSkip(t *testing.T) {
	ack := flow.AppendControl(nil, flow.Control{Type: flow.Ack, Bytes: 7})
	data := frame('D', make([]byte, 1000))
	if size, ok := flow.DataFrame(data[:flow.FrameHeaderSize]); !ok || size != 1000 {
		t.Fatalf("DataFrame of a 1000-byte data header: %d, %v", size, ok)
	}
	for _, hdr := range [][]byte{data[:4], frame('C', ack)[:flow.FrameHeaderSize], {'X', 0, 0, 0, 1}} {
		if _, ok := flow.DataFrame(hdr); ok {
			t.Errorf("DataFrame(%q) = ok, want not a whole data header", hdr)
		}
	}
	var fs flow.FrameScanner
	var payload int
	var ctls []flow.Control
	onPayload := func(n int) { payload += n }
	onControl := func(c flow.Control) error { ctls = append(ctls, c); return nil }
	if err := fs.Scan(data[:flow.FrameHeaderSize+10], onPayload, onControl); err != nil {
		t.Fatal(err)
	}
	if fs.PayloadLeft() != 990 || fs.DataSize() != 1000 || payload != 10 {
		t.Fatalf("after the header and 10 bytes: left %d, size %d, payload %d; want 990, 1000, 10", fs.PayloadLeft(), fs.DataSize(), payload)
	}
	fs.Skip(990)
	if fs.PayloadLeft() != 0 || fs.DataSize() != 0 || fs.MidFrame() {
		t.Fatalf("after Skip: left %d, size %d, mid-frame %v; want a frame boundary", fs.PayloadLeft(), fs.DataSize(), fs.MidFrame())
	}
	if err := fs.Scan(frame('C', ack), onPayload, onControl); err != nil || len(ctls) != 1 || ctls[0].Bytes != 7 {
		t.Fatalf("the ack after the skipped payload: %v, %v", ctls, err)
	}
}
