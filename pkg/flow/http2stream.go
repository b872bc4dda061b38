package flow

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

// h2Stream is one client stream as a net.Conn: Write sends DATA within the
// send windows (blocking while they are shut, which is what the session's
// writer measures), Read takes the response body's DATA and gives the
// window back as it reads, so a slow reader shuts the server's window.
// Its fields after m and id are guarded by m.mu.
type h2Stream struct {
	m      *h2Mux
	id     uint32
	index  int
	opened time.Time
	rwake  wakeup // readers' wake-up: data, end, error, deadline
	wwake  wakeup // writers': window, error, deadline

	sendWin    int64 // the stream's send window
	recvWin    int64 // the stream window this side advertises, left
	recvUnsent int64 // bytes read, not yet given back
	recv       bytes.Buffer
	status     string // the response's :status; "" until its HEADERS
	endRecv    bool   // the response ended (END_STREAM)
	endSent    bool   // the request ended (END_STREAM sent)
	err        error  // reset, GOAWAY, or the connection's end
	werr       error  // the server stopped this side's sending only
	rdeadline  time.Time
	wdeadline  time.Time

	blockedStream, blockedConn, blockedTCP time.Duration
	waitingSince                           time.Time // a write waiting on a window now; zero if none
	waitingOnStream                        bool
	closing                                windowClosing // the stream's send window
	wuReceived, wuSent                     uint64

	// pending is a small write (a frame header) held back to go out in
	// one DATA frame with what follows; tcpConn calls Flush after every
	// message. Only the session's writes touch it, under tcpConn's wmu.
	pending []byte
	joined  []byte
}

func newH2Stream(m *h2Mux, id uint32) *h2Stream {
	return &h2Stream{m: m, id: id, opened: time.Now(),
		sendWin: m.peerInitWindow, recvWin: h2RecvStreamWindow}
}

// wake tells the stream's readers and writers to look again. A nil
// stream is none.
func (s *h2Stream) wake() {
	if s == nil {
		return
	}
	s.rwake.broadcast()
	s.wwake.broadcast()
}

// ended forgets the stream once both its halves ended. Called with m.mu
// held.
func (s *h2Stream) ended() {
	if s.endRecv && s.endSent {
		s.m.forget(s)
	}
}

// Read reads the response body.
func (s *h2Stream) Read(p []byte) (int, error) {
	m := s.m
	m.mu.Lock()
	for s.recv.Len() == 0 || (s.status != "" && s.status != "200") {
		if err := s.readErr(); err != nil {
			m.mu.Unlock()
			return 0, err
		}
		dl, ch := s.rdeadline, s.rwake.wait()
		m.mu.Unlock()
		if err := s.wait(ch, dl); err != nil {
			return 0, err
		}
		m.mu.Lock()
	}
	n, _ := s.recv.Read(p)
	s.recvUnsent += int64(n)
	m.recvConnUnsent += int64(n)
	var streamInc int64
	if s.recvUnsent >= h2RecvStreamWindow/4 && !s.endRecv {
		streamInc, s.recvUnsent = s.recvUnsent, 0
		s.recvWin += streamInc
		s.wuSent++
	}
	connInc := m.takeConnUpdate(0)
	m.mu.Unlock()
	m.sendWindowUpdates(s.id, streamInc, connInc)
	return n, nil
}

// readErr is why Read cannot wait for data: the stream's error, the
// response's end (io.EOF) or refusal (a status other than 200, with the
// start of its body), or the connection's end. Called with m.mu held.
func (s *h2Stream) readErr() error {
	switch {
	case s.err != nil:
		return s.err
	case s.status != "" && s.status != "200" && (s.endRecv || s.recv.Len() >= 256):
		body := strings.TrimSpace(string(s.recv.Bytes()[:min(s.recv.Len(), 256)]))
		return fmt.Errorf("http2: the server answered %s: %s", s.status, body)
	case s.endRecv && s.recv.Len() == 0:
		return io.EOF
	case s.m.err != nil:
		return s.m.err
	}
	return nil
}

// wait blocks until ch wakes, the deadline passes (os.ErrDeadlineExceeded)
// or the connection ends.
func (s *h2Stream) wait(ch <-chan struct{}, deadline time.Time) error {
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ch:
	case <-s.m.done:
	case <-timeout:
		return os.ErrDeadlineExceeded
	}
	return nil
}

// Write sends p as DATA. A write of a few bytes (a frame header) is held
// until the next one or Flush, so the header and its payload share one
// DATA frame.
func (s *h2Stream) Write(p []byte) (int, error) {
	if len(p) <= FrameHeaderSize && len(s.pending)+len(p) <= 64 {
		s.pending = append(s.pending, p...)
		return len(p), nil
	}
	// The held bytes leave pending before the send, which may wait long
	// on a window: Close must not find them there and wait too.
	var head [64]byte
	held := copy(head[:], s.pending)
	s.pending = s.pending[:0]
	n, err := s.send(head[:held], p)
	return max(n-held, 0), err
}

// Flush sends what Write held back.
func (s *h2Stream) Flush() error {
	if len(s.pending) == 0 {
		return nil
	}
	_, err := s.send(s.pending, nil)
	s.pending = s.pending[:0]
	return err
}

// send writes head and then p as DATA frames, each no larger than the
// windows and the server's SETTINGS_MAX_FRAME_SIZE allow, and returns the
// bytes of both it sent. Only a frame that carries some of head is copied
// together (into joined); the others go from p as they are.
func (s *h2Stream) send(head, p []byte) (int, error) {
	sent, total := 0, len(head)+len(p)
	for sent < total {
		n, err := s.acquire(int64(total - sent))
		if err != nil {
			return sent, err
		}
		end := sent + int(n)
		var frame []byte
		if sent < len(head) {
			s.joined = append(s.joined[:0], head[sent:min(len(head), end)]...)
			s.joined = append(s.joined, p[:max(end-len(head), 0)]...)
			frame = s.joined
		} else {
			frame = p[sent-len(head) : end-len(head)]
		}
		if err := s.writeData(frame, false); err != nil {
			return sent, err
		}
		sent += int(n)
	}
	return sent, nil
}

// acquire waits until both send windows are open and takes up to want
// bytes of them. The time it waits is counted on the window that held it:
// the stream's when it is shut (whatever the connection's), else the
// connection's.
func (s *h2Stream) acquire(want int64) (int64, error) {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		if err := s.writeErr(); err != nil {
			return 0, err
		}
		now := time.Now()
		if s.sendWin > 0 && m.sendConn > 0 {
			n := min(want, s.sendWin, m.sendConn, m.peerMaxFrame)
			s.sendWin -= n
			m.sendConn -= n
			s.noteClosed(now)
			return n, nil
		}
		s.noteClosed(now)
		s.waitingSince, s.waitingOnStream = now, s.sendWin <= 0
		dl, ch := s.wdeadline, s.wwake.wait()
		m.mu.Unlock()
		err := s.wait(ch, dl)
		m.mu.Lock()
		if d := time.Since(s.waitingSince); s.waitingOnStream {
			s.blockedStream += d
		} else {
			s.blockedConn += d
		}
		s.waitingSince = time.Time{}
		if err != nil {
			return 0, err
		}
	}
}

// noteClosed records whether the send windows are shut at now (their
// closings). Called with m.mu held.
func (s *h2Stream) noteClosed(now time.Time) {
	s.closing.note(now, s.sendWin <= 0)
	s.m.connClosing.note(now, s.m.sendConn <= 0)
}

// writeErr is why the stream cannot send. Called with m.mu held.
func (s *h2Stream) writeErr() error {
	switch {
	case s.err != nil:
		return s.err
	case s.werr != nil:
		return s.werr
	case s.m.err != nil:
		return s.m.err
	case s.endSent:
		return fmt.Errorf("http2: stream %d: write after end of stream", s.id)
	}
	return nil
}

// writeData writes one DATA frame; the time the socket took, when it
// blocked, is the stream's time blocked on TCP.
func (s *h2Stream) writeData(p []byte, end bool) error {
	start := time.Now()
	err := s.m.writeFrame(func(fr *http2.Framer) error { return fr.WriteData(s.id, end, p) })
	if d := time.Since(start); d >= h2SocketBlockMin {
		s.m.mu.Lock()
		s.blockedTCP += d
		s.m.mu.Unlock()
	}
	return err
}

// CloseWrite ends the request body (END_STREAM), after what Write held.
func (s *h2Stream) CloseWrite() error {
	if err := s.Flush(); err != nil {
		return err
	}
	return s.endRequest()
}

// endRequest sends END_STREAM, once.
func (s *h2Stream) endRequest() error {
	m := s.m
	m.mu.Lock()
	if s.endSent || s.err != nil || s.werr != nil || m.err != nil {
		m.mu.Unlock()
		return nil
	}
	s.endSent = true
	s.ended()
	m.mu.Unlock()
	return s.writeData(nil, true)
}

// h2CloseLinger bounds how long Close waits for the response to end after
// the request's end.
const h2CloseLinger = time.Second

// Close ends the stream: the request body ends (the server reads its end
// as TCP's FIN), what the server still sends is read and dropped until
// its response ends (at most h2CloseLinger: through a proxy, a reset
// would overtake the end and cut the server's run short), and a response
// still running then is reset (CANCEL), as a closed socket would be.
func (s *h2Stream) Close() error {
	s.endRequest() // not Flush: a write may be waiting on the window with it
	s.SetReadDeadline(time.Now().Add(h2CloseLinger))
	buf := make([]byte, 16<<10)
	for {
		if _, err := s.Read(buf); err != nil {
			break
		}
	}
	s.m.mu.Lock()
	running := !s.endRecv && s.err == nil && s.m.err == nil
	s.m.mu.Unlock()
	if running {
		s.m.resetStream(s.id, http2.ErrCodeCancel, fmt.Errorf("http2: stream %d: %w", s.id, net.ErrClosed))
	}
	return nil
}

// reset ends the stream with an error the server sees (RST_STREAM
// INTERNAL_ERROR): Abort.
func (s *h2Stream) reset() {
	s.m.resetStream(s.id, http2.ErrCodeInternal, fmt.Errorf("http2: stream %d aborted", s.id))
}

func (s *h2Stream) LocalAddr() net.Addr  { return s.m.nc.LocalAddr() }
func (s *h2Stream) RemoteAddr() net.Addr { return s.m.nc.RemoteAddr() }

// SetDeadline sets both deadlines.
func (s *h2Stream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// SetReadDeadline bounds Read's wait for data; a Read waiting now looks
// at it at once.
func (s *h2Stream) SetReadDeadline(t time.Time) error {
	s.m.mu.Lock()
	s.rdeadline = t
	s.m.mu.Unlock()
	s.wake()
	return nil
}

// SetWriteDeadline bounds a write's wait for the windows (not a socket
// write in progress, which every stream shares).
func (s *h2Stream) SetWriteDeadline(t time.Time) error {
	s.m.mu.Lock()
	s.wdeadline = t
	s.m.mu.Unlock()
	s.wake()
	return nil
}

// stats is the stream layer now: windows, and the time writes waited on
// each layer, a wait in progress included.
func (s *h2Stream) stats() StreamStats {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	st := StreamStats{SendStreamWindow: s.sendWin, SendConnWindow: m.sendConn,
		RecvStreamWindow: s.recvWin, RecvConnWindow: m.recvConn,
		BlockedStream: s.blockedStream, BlockedConn: s.blockedConn, BlockedTCP: s.blockedTCP,
		WindowUpdatesReceived: s.wuReceived, WindowUpdatesSent: s.wuSent, Source: "frames"}
	now := time.Now()
	st.StreamClosedAt, st.StreamHeldAt = s.closing.at(now)
	st.ConnClosedAt, st.ConnHeldAt = m.connClosing.at(now)
	if !s.waitingSince.IsZero() {
		if d := time.Since(s.waitingSince); s.waitingOnStream {
			st.BlockedStream += d
		} else {
			st.BlockedConn += d
		}
	}
	if s.index == 0 {
		st.WindowUpdatesReceived += m.connWUReceived
		st.WindowUpdatesSent += m.connWUSent
	}
	return st
}
