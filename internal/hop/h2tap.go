package hop

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// h2Tap is an HTTP/2 server connection's socket seen by the hop before
// x/net's server: it walks the frames both ways (headers only, no copy),
// counts them by type, and ends a connection whose peer floods it with
// frames that cost the server work and move no data (SETTINGS, PING,
// WINDOW_UPDATE beyond what the data sent could need): GOAWAY
// ENHANCE_YOUR_CALM with the reason, then the socket closes. x/net bounds
// the frames it queues for answers but acks a flood it can keep up with
// for ever, and says nothing the hop could count.
type h2Tap struct {
	net.Conn
	m    *H2Metrics
	warn func(reason, msg string, args ...any)

	in       flow.H2FrameWalker // the peer's frames
	out      flow.H2FrameWalker // the server's frames
	wmu      sync.Mutex         // the server's writes, so a GOAWAY goes in between frames
	settings budget
	pings    budget
	updates  budget
	lastID   uint32 // the highest stream id the peer opened
	flooded  error
	wrote    error // set with wmu once the GOAWAY went out: the server writes no more
	// goingAway is set with the GOAWAY: goAway closes the socket itself
	// once it has drained, and Close leaves it to it.
	goingAway atomic.Bool
	// buf counts the DATA payload that passed towards x/net's server and
	// the handlers have not read (bp_stream_buffered_bytes).
	buf *flow.ConnBuffer
}

// The flood budgets: a burst, then a rate per second. WINDOW_UPDATEs also
// earn tokens for each DATA frame the server sent: a reader returns the
// window of each on its stream and the connection, maybe in pieces (HAProxy
// acks what each buffer took of a frame), so four per frame and one per
// KiB in it. A flood of updates with no data behind them runs out.
const (
	settingsBurst, settingsRate = 100, 10
	pingBurst, pingRate         = 100, 10
	updateBurst, updateRate     = 1000, 100
	updatesPerData, updateBytes = 4, 1024
)

func newH2Tap(c net.Conn, m *H2Metrics, warn func(string, string, ...any), sawPreface bool) *h2Tap {
	now := time.Now()
	t := &h2Tap{Conn: c, m: m, warn: warn, buf: m.buffered.Conn()}
	t.settings.init(settingsBurst, settingsRate, now)
	t.pings.init(pingBurst, pingRate, now)
	t.updates.init(updateBurst, updateRate, now)
	if !sawPreface {
		t.in.Skip = len(http2.ClientPreface)
	}
	t.in.Data = t.buf.ReceivedOn
	t.in.Keep = func(h http2.FrameHeader) int {
		if h.Type == http2.FrameData && t.buf.HelloWanted(h.StreamID) {
			return len(flow.TCPHelloPrefix) + flow.MaxHelloSize + 1
		}
		return 0
	}
	return t
}

// helloFrame notes the stream index the hello at the start of a stream's
// first DATA frame names, for the stream's handler to claim its count
// (countedBody): a body that starts otherwise has none.
func (t *h2Tap) helloFrame(h http2.FrameHeader, p []byte) {
	if h.Type != http2.FrameData || len(p) == 0 {
		return
	}
	line, ok := bytes.CutPrefix(p, []byte(flow.TCPHelloPrefix))
	i := bytes.IndexByte(line, '\n')
	if !ok || i < 0 {
		return
	}
	if hello, err := flow.ParseHello(line[:i]); err == nil {
		t.buf.Hello(h.StreamID, flow.HelloKey(hello))
	}
}

// Read passes the peer's bytes on after walking their frames; a flood ends
// the connection there.
func (t *h2Tap) Read(p []byte) (int, error) {
	if t.flooded != nil {
		return 0, t.flooded
	}
	n, err := t.Conn.Read(p)
	t.in.Walk(p[:n], t.received, t.helloFrame)
	if t.flooded != nil {
		t.goAway()
		return 0, t.flooded
	}
	return n, err
}

// received counts one of the peer's frames and spends its budget.
func (t *h2Tap) received(h http2.FrameHeader) {
	t.m.received(h.Type)
	now := time.Now()
	var reason string
	switch {
	case h.Type == http2.FrameSettings && h.Flags&http2.FlagSettingsAck == 0 && !t.settings.take(now):
		reason = "settings_flood"
	case h.Type == http2.FramePing && h.Flags&http2.FlagPingAck == 0 && !t.pings.take(now):
		reason = "ping_flood"
	case h.Type == http2.FrameWindowUpdate && !t.updates.take(now):
		reason = "window_update_flood"
	case h.Type == http2.FrameHeaders && h.StreamID > t.lastID:
		t.lastID = h.StreamID
		t.buf.Open(h.StreamID)
	case h.Type == http2.FrameRSTStream:
		t.buf.Reset(h.StreamID) // its unread bytes are gone at once
	}
	if reason != "" && t.flooded == nil {
		t.flooded = fmt.Errorf("http2: %s from %s: %s frames past the server's budget", reason, t.RemoteAddr(), h.Type)
		t.m.errors.WithLabelValues(reason).Inc()
		t.warn(reason, "http2 connection closed: frame flood", "peer", t.RemoteAddr().String(), "frame", h.Type.String())
	}
}

// Write passes the server's frames on, counting them; DATA frames earn
// the peer WINDOW_UPDATEs.
func (t *h2Tap) Write(p []byte) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.wrote != nil {
		return 0, t.wrote
	}
	n, err := t.Conn.Write(p)
	t.out.Walk(p[:n], func(h http2.FrameHeader) {
		t.m.sent(h.Type)
		switch h.Type {
		case http2.FrameData:
			t.updates.earn(updatesPerData + float64(h.Length)/updateBytes)
		case http2.FrameRSTStream:
			t.buf.Reset(h.StreamID) // the server's reset: the same
		}
	}, nil)
	return n, err
}

// goAwayWait bounds how long goAway waits for the server's writer to be
// between frames: a flood keeps it busy writing answers.
const goAwayWait = 250 * time.Millisecond

// goAway tells the flooding peer why, once the server's writer is between
// two frames (at most goAwayWait), lets the server write nothing more, and
// closes the socket.
func (t *h2Tap) goAway() {
	for deadline := time.Now().Add(goAwayWait); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if !t.wmu.TryLock() {
			continue
		}
		if t.out.MidFrame() {
			t.wmu.Unlock()
			continue
		}
		var b bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		fr.WriteGoAway(t.lastID, http2.ErrCodeEnhanceYourCalm, []byte(t.flooded.Error()))
		t.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		t.Conn.Write(b.Bytes())
		t.wrote = t.flooded // nothing after the GOAWAY
		t.goingAway.Store(true)
		t.wmu.Unlock()
		t.drain()
		break
	}
	t.Conn.Close()
}

// Close closes the socket, but not while goAway drains it: x/net's server
// closes its connection at once when a write fails, as the ones after the
// GOAWAY do, and a close with the flooder's frames unread resets the
// connection before the peer has read the GOAWAY (seen in CI: a ping
// flood's client read no GOAWAY, about one in fifty under -race). goAway
// closes the socket when it is done, within 2 goAwayWait.
func (t *h2Tap) Close() error {
	if t.goingAway.Load() {
		return nil
	}
	return t.Conn.Close()
}

// drain ends the sending half after the GOAWAY and reads what the flooder
// still sends, for a moment, before the socket closes: closing with its
// frames unread resets the connection, and a reset can reach the peer
// before it has read the GOAWAY, which it then never sees.
func (t *h2Tap) drain() {
	if cw, ok := t.Conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	t.Conn.SetReadDeadline(time.Now().Add(goAwayWait))
	buf := make([]byte, 32<<10)
	for range 64 { // at most 2 MiB
		if _, err := t.Conn.Read(buf); err != nil {
			return
		}
	}
}

// budget is a token bucket: burst tokens, refilled at rate per second,
// and the tokens earned on top (earn), spent first. The reader takes, the
// writer earns: mu orders them.
type budget struct {
	mu                  sync.Mutex
	tokens, burst, rate float64
	earned              float64
	last                time.Time
}

func (b *budget) init(burst, rate float64, now time.Time) {
	b.tokens, b.burst, b.rate, b.last = burst, burst, rate, now
}

// take spends a token; false when none is left.
func (b *budget) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	switch {
	case b.earned >= 1:
		b.earned--
	case b.tokens >= 1:
		b.tokens--
	default:
		return false
	}
	return true
}

// maxEarned bounds the tokens a long download can bank.
const maxEarned = 1 << 20

// earn adds n tokens beyond the burst (the WINDOW_UPDATEs the server's
// DATA frames call for).
func (b *budget) earn(n float64) {
	b.mu.Lock()
	b.earned = min(b.earned+n, maxEarned)
	b.mu.Unlock()
}
