package flow

import (
	"encoding/binary"
	"errors"
	"testing"
)

func frame(typ byte, body []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(body)))
	return append(b, body...)
}

// TestPassthroughParse: a passthrough counts the payload and sees every
// control message of a framed stream however the reads cut it, and refuses
// what a framed reader refuses.
func TestPassthroughParse(t *testing.T) {
	ack := AppendControl(nil, Control{Type: Ack, Bytes: 7})
	fin := AppendControl(nil, Control{Type: Fin, Bytes: 1000})
	var stream []byte
	stream = append(stream, frame(frameData, make([]byte, 600))...)
	stream = append(stream, frame(frameControl, ack)...)
	stream = append(stream, frame(frameData, nil)...) // empty data frame
	stream = append(stream, frame(frameData, make([]byte, 400))...)
	stream = append(stream, frame(frameControl, fin)...)

	for _, cut := range []int{1, 2, 3, 5, 7, 64, 601, len(stream)} { // read sizes
		pt := &passthrough{ctlSize: -1}
		payload := 0
		var seen []string
		for b := stream; len(b) > 0; {
			n := min(cut, len(b))
			err := pt.parse(b[:n], func(m int) { payload += m }, func(c Control) error {
				seen = append(seen, string(c.Type))
				if c.Type == Fin && int64(payload) != c.Bytes {
					t.Errorf("reads of %d: fin of %d after %d payload bytes", cut, c.Bytes, payload)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("reads of %d: %v", cut, err)
			}
			b = b[n:]
		}
		if payload != 1000 || len(seen) != 2 || seen[0] != string(Ack) || seen[1] != string(Fin) || pt.midFrame() {
			t.Errorf("reads of %d: payload %d, controls %v, mid-frame %v; want 1000, [ack fin], false", cut, payload, seen, pt.midFrame())
		}
	}

	// A stream that stops inside a frame is mid-frame.
	pt := &passthrough{ctlSize: -1}
	if err := pt.parse(stream[:3], func(int) {}, func(Control) error { return nil }); err != nil || !pt.midFrame() {
		t.Errorf("3 bytes of a header: err %v, mid-frame %v; want nil, true", err, pt.midFrame())
	}

	bad := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"unknown frame type", frame('X', nil), nil},
		{"data frame too large", []byte{frameData, 0xff, 0xff, 0xff, 0xff}, ErrTooLarge},
		{"control frame too large", []byte{frameControl, 0, 1, 0, 0}, ErrTooLarge},
		{"control frame that is no control", frame(frameControl, []byte("{nope")), nil},
	}
	for _, c := range bad {
		pt := &passthrough{ctlSize: -1}
		err := pt.parse(c.stream, func(int) {}, func(Control) error { return nil })
		var pe ProtocolError
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) || (c.want == nil && !errors.As(err, &pe)) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}
