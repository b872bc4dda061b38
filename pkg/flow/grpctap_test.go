package flow

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2"
)

// TestTapUpdateBeforeHeaders: a client's tap is fed a written frame once
// its Write returns, so the server's WINDOW_UPDATE for a new stream can
// reach the tap before the stream's HEADERS do. The update counts all
// the same; one for a stream that ended and was forgotten, one the server
// sends on a server's (even) id, and one far above any stream seen make
// no stream.
func TestTapUpdateBeforeHeaders(t *testing.T) {
	frames := func(write func(fr *http2.Framer)) []byte {
		var b bytes.Buffer
		write(http2.NewFramer(&b, nil))
		return b.Bytes()
	}
	tap := newH2Tap(true)
	tap.wrote([]byte(http2.ClientPreface))
	// The server's update for stream 1 arrives first...
	tap.read(frames(func(fr *http2.Framer) { fr.WriteWindowUpdate(1, 16421) }))
	// ...then the tap sees what the client wrote: HEADERS and 20,000 bytes.
	tap.wrote(frames(func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82}, EndHeaders: true})
		fr.WriteData(1, false, make([]byte, 10000))
		fr.WriteData(1, false, make([]byte, 10000))
	}))
	v, ok := tap.view(1)
	if want := int64(h2DefaultWindow + 16421 - 20000); !ok || v.sendStream != want || v.updatesIn != 1 {
		t.Errorf("stream 1: send window %d (seen %v, %d updates), want %d: the default, the update, less the data", v.sendStream, ok, v.updatesIn, want)
	}
	// Stream 1 ends both ways, unclaimed: forgotten. A late update for it,
	// one on an even id and one far ahead make no stream.
	tap.wrote(frames(func(fr *http2.Framer) { fr.WriteData(1, true, nil) }))
	tap.read(frames(func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x88}, EndHeaders: true, EndStream: true})
	}))
	tap.read(frames(func(fr *http2.Framer) {
		fr.WriteWindowUpdate(1, 100)
		fr.WriteWindowUpdate(4, 100)
		fr.WriteWindowUpdate(1+2*tapAhead+2, 100)
	}))
	for _, id := range []uint32{1, 4, 1 + 2*tapAhead + 2} {
		if _, ok := tap.view(id); ok {
			t.Errorf("stream %d has state after a stray update", id)
		}
	}
	// A server's tap takes no update for a stream it has not seen.
	srv := newH2Tap(false)
	srv.read([]byte(http2.ClientPreface))
	srv.read(frames(func(fr *http2.Framer) { fr.WriteWindowUpdate(3, 100) }))
	if _, ok := srv.view(3); ok {
		t.Error("a server's tap made a stream from an update alone")
	}
}
