package flow

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"testing"

	"golang.org/x/net/http2"
)

// walkEvent is one callback of H2FrameWalker.Walk: a header as it
// completes, or a whole frame and its kept payload.
type walkEvent struct {
	whole   bool
	typ     http2.FrameType
	flags   http2.Flags
	length  uint32
	stream  uint32
	payload string
}

func eventOf(h http2.FrameHeader, whole bool, p []byte) walkEvent {
	return walkEvent{whole: whole, typ: h.Type, flags: h.Flags, length: h.Length, stream: h.StreamID, payload: string(p)}
}

// testKeep keeps a number of payload bytes that depends on the header,
// so that keeping none, some and all are walked.
func testKeep(h http2.FrameHeader) int { return int(h.Flags) % 7 }

// walkCut walks b cut at the given lengths (the rest in one piece),
// returning the callbacks and whether it stopped mid-frame.
func walkCut(skip int, b []byte, cuts []byte) ([]walkEvent, bool) {
	w := H2FrameWalker{Skip: skip, Keep: testKeep}
	var got []walkEvent
	onHeader := func(h http2.FrameHeader) { got = append(got, eventOf(h, false, nil)) }
	onFrame := func(h http2.FrameHeader, p []byte) { got = append(got, eventOf(h, true, p)) }
	for _, c := range cuts {
		n := min(int(c), len(b))
		w.Walk(b[:n], onHeader, onFrame)
		b = b[n:]
	}
	w.Walk(b, onHeader, onFrame)
	return got, w.MidFrame()
}

// walkReference is what x/net's own frame-header reader finds in b (after
// skip bytes): the events the walker must report, and whether b ends
// inside the preface or a frame.
func walkReference(skip int, b []byte) ([]walkEvent, bool) {
	if len(b) < skip {
		return nil, true
	}
	r := bytes.NewReader(b[skip:])
	var want []walkEvent
	for r.Len() > 0 {
		h, err := http2.ReadFrameHeader(r)
		if err != nil {
			return want, true // a header cut short
		}
		want = append(want, eventOf(h, false, nil))
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(r, payload); err != nil {
			return want, true
		}
		want = append(want, eventOf(h, true, payload[:min(testKeep(h), len(payload))]))
	}
	return want, false
}

// h2Bytes is a real HTTP/2 client's start written by x/net's Framer: the
// preface, SETTINGS, HEADERS, DATA cut in frames, WINDOW_UPDATE, PING and
// an empty DATA ending the stream.
func h2Bytes(t testing.TB) []byte {
	var b bytes.Buffer
	b.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&b, nil)
	check := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	check(fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20}))
	check(fr.WriteSettingsAck())
	check(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82, 0x86, 0x84}, EndHeaders: true}))
	check(fr.WriteData(1, false, bytes.Repeat([]byte("x"), 20000)))
	check(fr.WriteWindowUpdate(0, 12345))
	check(fr.WriteWindowUpdate(1, 1<<30))
	check(fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}))
	check(fr.WriteData(1, true, nil))
	return b.Bytes()
}

// TestH2FrameWalkerCutAnywhere walks a real client's frames cut at every
// place and in pieces of every small size: the same frames, payloads and
// boundaries as x/net reads in them whole.
func TestH2FrameWalkerCutAnywhere(t *testing.T) {
	b := h2Bytes(t)
	skip := len(http2.ClientPreface)
	want, wantMid := walkReference(skip, b)
	if len(want) != 16 || wantMid {
		t.Fatalf("reference walked %d events (want 16: 8 frames), mid-frame %v", len(want), wantMid)
	}
	if w := want[7]; w.typ != http2.FrameData || w.length != 20000 || w.stream != 1 {
		t.Fatalf("4th frame %+v, want DATA of 20000 bytes on stream 1", w)
	}
	for cut := 0; cut <= len(b); cut++ {
		got, mid := walkCut(skip, b, []byte{byte(min(cut, 255))})
		if !slices.Equal(got, want) || mid {
			t.Fatalf("cut at %d: got %d events (mid-frame %v), want %d", cut, len(got), mid, len(want))
		}
	}
	for size := 1; size <= 20; size++ {
		cuts := bytes.Repeat([]byte{byte(size)}, len(b)/size+1)
		if got, mid := walkCut(skip, b, cuts); !slices.Equal(got, want) || mid {
			t.Fatalf("pieces of %d bytes: got %d events (mid-frame %v), want %d", size, len(got), mid, len(want))
		}
	}
	for end := 0; end < len(b); end++ {
		want, wantMid := walkReference(skip, b[:end])
		got, mid := walkCut(skip, b[:end], []byte{3, 9, 1})
		if !slices.Equal(got, want) || mid != wantMid {
			t.Fatalf("stream cut off after %d bytes: got %v mid-frame %v, want %v mid-frame %v", end, got, mid, want, wantMid)
		}
	}
}

// FuzzH2FrameWalker walks any bytes, cut anywhere: the walker must find
// the frame headers, kept payloads and boundaries x/net's ReadFrameHeader
// finds in them whole.
func FuzzH2FrameWalker(f *testing.F) {
	f.Add(h2Bytes(f), []byte{7, 30, 1}, true)
	f.Add([]byte{0, 0, 0, 4, 1, 0, 0, 0, 0}, []byte{4}, false)
	f.Add([]byte{0, 0, 3, 0, 6, 0x80, 0, 0, 1, 'a', 'b', 'c', 0, 0}, []byte{}, false)
	f.Fuzz(func(t *testing.T, b, cuts []byte, preface bool) {
		skip := 0
		if preface {
			skip = len(http2.ClientPreface)
		}
		want, wantMid := walkReference(skip, b)
		got, mid := walkCut(skip, b, cuts)
		if !slices.Equal(got, want) || mid != wantMid {
			t.Fatalf("walked %s\nwant %s", fmt.Sprint(got, mid), fmt.Sprint(want, wantMid))
		}
	})
}
