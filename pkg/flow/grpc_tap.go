package flow

import (
	"encoding/binary"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/protobuf/proto"

	pb "github.com/go-backpressure/go-backpressure/proto/backpressure/v1"
)

// h2Tap follows the HTTP/2 frames one side of a gRPC connection writes and
// reads, as plain text (above TLS, below grpc-go), to know what grpc-go
// keeps to itself: the flow-control windows of the connection and of each
// stream, both ways, and the WINDOW_UPDATE frames. Only frame headers and
// the few frames that move windows are decoded; payload bytes are counted,
// never copied. Its figures are exact, since every frame passes it.
type h2Tap struct {
	out, in H2FrameWalker // what this side writes, what it reads
	// outData, if set, hears of DATA payload bytes as they go (a frame
	// cut anywhere counts what went): a client's queued messages leave so.
	outData func(n int)
	// buf, a server's, is its streams' received-but-unread bytes: the
	// tap opens each of the client's streams in it and resets them
	// (its in walker's Data fills them).
	buf *ConnBuffer

	mu sync.Mutex
	// sendInit and recvInit are SETTINGS_INITIAL_WINDOW_SIZE as the peer
	// and this side last set it: a new stream's send and receive window.
	sendInit, recvInit int64
	// sendConn and recvConn are the connection's windows.
	sendConn, recvConn        int64
	connClosing               windowClosing // sendConn's closings
	connUpdatesIn, connUpdOut uint64
	streams                   map[uint32]*tapStream
	// maxID is the highest stream id a frame has named: a stream above it
	// is new, at or below it one that ended (and may be forgotten).
	maxID uint32
	// helloFromOut: the client's hellos are in what this side writes (a
	// client), or in what it reads (a server).
	helloFromOut bool
}

// tapStream is one stream's state in the tap.
type tapStream struct {
	send, recv            int64         // the stream's windows
	closing               windowClosing // send's closings
	updatesIn, updatesOut uint64
	hello                 *pb.Hello // decoded from its first DATA frame; nil: not (yet)
	claimed               bool      // a Conn took it (claim)
	endOut, endIn         bool      // END_STREAM or RST_STREAM each way
	firstData             bool      // its first DATA frame from the client has passed
}

const (
	// h2DefaultWindow is the windows' size before SETTINGS change it
	// (RFC 9113 6.9.2; x/net keeps its own unexported).
	h2DefaultWindow = 65535
	// tapKeep bounds the frame bytes the tap keeps to decode one frame:
	// SETTINGS and WINDOW_UPDATE are small, a hello's DATA frame at most
	// MaxHelloSize plus its framing.
	tapKeep = 2 * MaxHelloSize
)

// newH2Tap is the tap of a client's connection (client true) or a server's.
func newH2Tap(client bool) *h2Tap {
	t := &h2Tap{sendInit: h2DefaultWindow, recvInit: h2DefaultWindow, sendConn: h2DefaultWindow,
		recvConn: h2DefaultWindow, streams: make(map[uint32]*tapStream), helloFromOut: client}
	// The client's preface comes first in what the client writes and in
	// what the server reads.
	hello := &t.in
	if client {
		hello = &t.out
	}
	hello.Skip = len(http2.ClientPreface)
	t.out.Keep = func(h http2.FrameHeader) int { return t.keep(h, client) }
	t.in.Keep = func(h http2.FrameHeader) int { return t.keep(h, !client) }
	return t
}

// keep is how much of a frame's payload the tap decodes (fromClient: the
// frame is the client's): SETTINGS and WINDOW_UPDATE whole, a DATA frame
// only when it may carry a hello (its first bytes), so payload is never
// copied.
func (t *h2Tap) keep(h http2.FrameHeader, fromClient bool) int {
	switch {
	case h.Type == http2.FrameSettings || h.Type == http2.FrameWindowUpdate:
		return tapKeep
	case h.Type == http2.FrameData && fromClient && t.wantHello(h.StreamID):
		return tapKeep
	}
	return 0
}

// wantHello reports whether stream id's first DATA frame from the client
// is still to come.
func (t *h2Tap) wantHello(id uint32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.streams[id]
	return st == nil || !st.firstData
}

// wrote and read feed the tap the bytes that passed.
func (t *h2Tap) wrote(b []byte) {
	n := t.out.Walk(b, nil, func(h http2.FrameHeader, p []byte) { t.frame(h2Frame{h, p}, true) })
	if n > 0 && t.outData != nil {
		t.outData(n)
	}
}

func (t *h2Tap) read(b []byte) {
	t.in.Walk(b, nil, func(h http2.FrameHeader, p []byte) { t.frame(h2Frame{h, p}, false) })
}

// h2Frame is one whole frame's header and, for the frames the tap decodes,
// its payload (cut at tapKeep).
type h2Frame struct {
	http2.FrameHeader
	payload []byte
}

// frame applies one whole frame, written (out) or read.
func (t *h2Tap) frame(f h2Frame, out bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch f.Type {
	case http2.FrameData:
		t.data(f, out)
	case http2.FrameHeaders:
		if !out {
			t.buf.Open(f.StreamID)
		}
		st := t.stream(f.StreamID)
		if f.Flags.Has(http2.FlagHeadersEndStream) {
			t.end(f.StreamID, st, out)
		}
	case http2.FrameRSTStream:
		t.buf.Reset(f.StreamID) // either side's: its unread bytes are gone
		if st := t.streams[f.StreamID]; st != nil {
			st.endOut, st.endIn = true, true
			t.forget(f.StreamID, st)
		}
	case http2.FrameSettings:
		if !f.Flags.Has(http2.FlagSettingsAck) {
			t.settings(f.payload, out)
		}
	case http2.FrameWindowUpdate:
		if len(f.payload) >= 4 {
			t.windowUpdate(f.StreamID, int64(binary.BigEndian.Uint32(f.payload)&0x7fffffff), out)
		}
	}
}

// data counts a DATA frame against the windows it uses, and decodes a
// stream's first one from the client: its hello.
func (t *h2Tap) data(f h2Frame, out bool) {
	st := t.stream(f.StreamID)
	n := int64(f.Length)
	now := time.Now()
	if out {
		t.sendConn -= n
		st.send -= n
		t.connClosing.note(now, t.sendConn <= 0)
		st.closing.note(now, st.send <= 0)
	} else {
		t.recvConn -= n
		st.recv -= n
	}
	if out == t.helloFromOut && !st.firstData {
		st.firstData = true
		if len(f.payload) > 5 {
			st.hello = decodeHelloFrame(f.payload)
		}
	}
	if f.Flags.Has(http2.FlagDataEndStream) {
		t.end(f.StreamID, st, out)
	}
}

// decodeHelloFrame decodes the gRPC message at the start of a DATA frame
// (a 5-byte prefix, then the Message) when it is a hello; nil otherwise.
func decodeHelloFrame(b []byte) *pb.Hello {
	size := int(binary.BigEndian.Uint32(b[1:5]))
	if b[0] != 0 || size > len(b)-5 {
		return nil // compressed, or longer than a hello
	}
	var m pb.Message
	if proto.Unmarshal(b[5:5+size], &m) != nil {
		return nil
	}
	return m.GetHello()
}

// settings applies SETTINGS_INITIAL_WINDOW_SIZE: a change moves the send
// (or receive) window of every open stream by the difference (RFC 9113
// 6.9.2).
func (t *h2Tap) settings(b []byte, out bool) {
	for ; len(b) >= 6; b = b[6:] {
		if http2.SettingID(binary.BigEndian.Uint16(b)) != http2.SettingInitialWindowSize {
			continue
		}
		v := int64(binary.BigEndian.Uint32(b[2:]))
		if out {
			for _, st := range t.streams {
				st.recv += v - t.recvInit
			}
			t.recvInit = v
		} else {
			now := time.Now()
			for _, st := range t.streams {
				st.send += v - t.sendInit
				st.closing.note(now, st.send <= 0)
			}
			t.sendInit = v
		}
	}
}

// windowUpdate opens a window: the peer's (read) or this side's (written).
func (t *h2Tap) windowUpdate(id uint32, inc int64, out bool) {
	if id == 0 {
		if out {
			t.recvConn += inc
			t.connUpdOut++
		} else {
			t.sendConn += inc
			t.connClosing.note(time.Now(), t.sendConn <= 0)
			t.connUpdatesIn++
		}
		return
	}
	st := t.streams[id]
	switch {
	case st == nil && !out && t.opensAhead(id):
		// The server's update for a stream this client opened whose
		// HEADERS the tap has not seen yet: a frame is fed to the tap once
		// its Write returns, and the server may have read it, and
		// answered, before that. Dropped, its increment went missing for
		// good: under load a stream's window read 16,421 bytes (its hello
		// and first message) short, -16,421 when grpc-go's was 0. Not
		// through stream, so that it does not move maxID: a server
		// naming streams never opened makes at most tapAhead of them
		// more than the client opens.
		st = &tapStream{send: t.sendInit, recv: t.recvInit}
		t.streams[id] = st
	case st == nil:
		return // a stream already forgotten
	}
	if out {
		st.recv += inc
		st.updatesOut++
	} else {
		st.send += inc
		st.closing.note(time.Now(), st.send <= 0)
		st.updatesIn++
	}
}

// stream returns id's state, new streams starting at the initial windows.
func (t *h2Tap) stream(id uint32) *tapStream {
	t.maxID = max(t.maxID, id)
	st := t.streams[id]
	if st == nil {
		st = &tapStream{send: t.sendInit, recv: t.recvInit}
		t.streams[id] = st
	}
	return st
}

// tapAhead bounds how far above the highest stream seen a client's tap
// takes an update for a stream it has not seen open (opensAhead).
const tapAhead = 100

// opensAhead reports whether id may be a stream this client opened and
// the tap has not seen yet: a client's (odd) id above any seen, and not
// far above.
func (t *h2Tap) opensAhead(id uint32) bool {
	return t.helloFromOut && id%2 == 1 && id > t.maxID && id <= t.maxID+2*tapAhead
}

// end marks one direction of a stream ended; a stream ended both ways
// that no Conn took is forgotten (a taken one, at release).
func (t *h2Tap) end(id uint32, st *tapStream, out bool) {
	if out {
		st.endOut = true
	} else {
		st.endIn = true
	}
	if st.endOut && st.endIn {
		t.forget(id, st)
	}
}

func (t *h2Tap) forget(id uint32, st *tapStream) {
	if !st.claimed {
		delete(t.streams, id)
	}
}

// claim finds the stream whose hello names place k on the connection and
// that no Conn took yet (the earliest), takes it and returns its id; 0
// when its hello has not passed the tap yet.
func (t *h2Tap) claim(k int) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var found uint32
	for id, st := range t.streams {
		if !st.claimed && st.hello != nil && int(st.hello.GetStream()) == k && (found == 0 || id < found) {
			found = id
		}
	}
	if found != 0 {
		t.streams[found].claimed = true
	}
	return found
}

// release forgets a claimed stream once its Conn is closed.
func (t *h2Tap) release(id uint32) {
	t.mu.Lock()
	delete(t.streams, id)
	t.mu.Unlock()
}

// tapView is a copy of what the tap knows of one stream and its connection.
type tapView struct {
	sendStream, recvStream, sendConn, recvConn int64
	streamClosedAt, connClosedAt               time.Time // first closings
	streamHeldAt, connHeldAt                   time.Time // first closings that held
	updatesIn, updatesOut                      uint64
	connUpdatesIn, connUpdatesOut              uint64
}

// view returns stream id's figures; ok is false when the tap does not
// know the stream (windows then -1).
func (t *h2Tap) view(id uint32) (v tapView, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v = tapView{sendStream: -1, recvStream: -1, sendConn: t.sendConn, recvConn: t.recvConn,
		connUpdatesIn: t.connUpdatesIn, connUpdatesOut: t.connUpdOut}
	now := time.Now()
	v.connClosedAt, v.connHeldAt = t.connClosing.at(now)
	st := t.streams[id]
	if st == nil {
		return v, false
	}
	v.sendStream, v.recvStream = st.send, st.recv
	v.streamClosedAt, v.streamHeldAt = st.closing.at(now)
	v.updatesIn, v.updatesOut = st.updatesIn, st.updatesOut
	return v, true
}
