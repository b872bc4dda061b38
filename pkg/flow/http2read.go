package flow

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/net/http2"
)

// The client connection's frame reader: one goroutine reads every frame
// the server sends and applies it to the windows and streams.

// maxWindow is the largest flow-control window RFC 9113 allows.
const maxWindow = 1<<31 - 1

// readLoop reads frames until the connection ends.
func (m *h2Mux) readLoop() {
	for {
		f, err := m.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				m.resetStream(se.StreamID, se.Code, fmt.Errorf("http2: stream %d: %v", se.StreamID, se))
				continue
			}
			m.connError(fmt.Errorf("http2: read frame: %w", m.readErr(err)), err)
			return
		}
		if err := m.handle(f); err != nil {
			m.connError(err, err)
			return
		}
	}
}

// readErr names a read error after the GOAWAY that preceded it, if any:
// the server said why before it closed.
func (m *h2Mux) readErr(err error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.goAway != nil {
		return fmt.Errorf("%w, then %w", m.goAway, err)
	}
	return err
}

// connError ends the connection; a protocol error of the server's is told
// to it first (GOAWAY with the code).
func (m *h2Mux) connError(err, cause error) {
	var ce http2.ConnectionError
	if errors.As(cause, &ce) {
		m.writeFrame(func(fr *http2.Framer) error { return fr.WriteGoAway(0, http2.ErrCode(ce), nil) })
	}
	m.fail(err)
}

// handle applies one frame.
func (m *h2Mux) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.DataFrame:
		return m.onData(f)
	case *http2.MetaHeadersFrame:
		m.onHeaders(f)
	case *http2.SettingsFrame:
		return m.onSettings(f)
	case *http2.WindowUpdateFrame:
		return m.onWindowUpdate(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			return m.writeFrame(func(fr *http2.Framer) error { return fr.WritePing(true, f.Data) })
		}
	case *http2.GoAwayFrame:
		m.onGoAway(f)
	case *http2.RSTStreamFrame:
		m.mu.Lock()
		s := m.streams[f.StreamID]
		switch {
		case s != nil && s.endRecv && f.ErrCode == http2.ErrCodeNo:
			// The response is whole; the server asks this side to stop
			// sending (RFC 9113 8.1): what was read stays readable.
			s.werr = fmt.Errorf("http2: the server ended stream %d after its response (RST_STREAM NO_ERROR): %w", f.StreamID, ErrPeerClosed)
			m.forget(s)
		case s != nil:
			s.err = fmt.Errorf("http2: the server reset stream %d (%v)", f.StreamID, f.ErrCode)
			m.forget(s)
		}
		m.mu.Unlock()
		s.wake()
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol) // push is off (SETTINGS_ENABLE_PUSH 0)
	}
	return nil // PRIORITY and unknown types are ignored (RFC 9113 5.5)
}

// onData queues a DATA frame's bytes on its stream, within the windows
// this side advertised.
func (m *h2Mux) onData(f *http2.DataFrame) error {
	n := int64(f.Header().Length) // padding counts against the windows too
	m.mu.Lock()
	if n > m.recvConn {
		m.mu.Unlock()
		return fmt.Errorf("http2: the server sent %d bytes past the connection window (%d): %w", n, m.recvConn, http2.ConnectionError(http2.ErrCodeFlowControl))
	}
	m.recvConn -= n
	s := m.streams[f.StreamID]
	if s == nil || s.endRecv {
		// A stream this side reset or forgot: its bytes go back to the
		// connection window at once.
		m.recvConnUnsent += n
		inc := m.takeConnUpdate(1)
		m.mu.Unlock()
		m.sendWindowUpdates(0, 0, inc)
		return nil
	}
	if n > s.recvWin {
		m.recvConnUnsent += n
		m.mu.Unlock()
		m.resetStream(s.id, http2.ErrCodeFlowControl, fmt.Errorf("http2: the server sent %d bytes past stream %d's window (%d)", n, s.id, s.recvWin))
		return nil
	}
	s.recvWin -= n
	data := f.Data()
	s.recv.Write(data)
	pad := n - int64(len(data))
	s.recvUnsent += pad
	m.recvConnUnsent += pad
	if f.StreamEnded() {
		s.endRecv = true
		s.ended()
	}
	m.mu.Unlock()
	s.wake()
	return nil
}

// onHeaders takes the response's status, or its trailers.
func (m *h2Mux) onHeaders(f *http2.MetaHeadersFrame) {
	m.mu.Lock()
	s := m.streams[f.StreamID]
	if s == nil {
		m.mu.Unlock()
		return
	}
	if s.status == "" {
		s.status = f.PseudoValue("status")
	}
	if f.StreamEnded() {
		s.endRecv = true
		s.ended()
	}
	m.mu.Unlock()
	s.wake()
}

// onSettings applies the server's settings and acknowledges them.
func (m *h2Mux) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	m.mu.Lock()
	err := f.ForeachSetting(func(st http2.Setting) error {
		switch st.ID {
		case http2.SettingInitialWindowSize:
			if st.Val > maxWindow {
				return fmt.Errorf("http2: SETTINGS_INITIAL_WINDOW_SIZE %d: %w", st.Val, http2.ConnectionError(http2.ErrCodeFlowControl))
			}
			// The change applies to every open stream's window (RFC
			// 9113 6.9.2), which may go below zero.
			delta := int64(st.Val) - m.peerInitWindow
			m.peerInitWindow = int64(st.Val)
			now := time.Now()
			for _, s := range m.streams {
				s.sendWin += delta
				s.closing.note(now, s.sendWin <= 0)
			}
		case http2.SettingMaxFrameSize:
			m.peerMaxFrame = int64(st.Val)
		case http2.SettingMaxConcurrentStreams:
			m.peerMaxStreams = int64(st.Val)
		}
		return nil
	})
	streams := m.streamList()
	m.broadcast()
	m.mu.Unlock()
	for _, s := range streams {
		s.wake()
	}
	if err != nil {
		return err
	}
	return m.writeFrame(func(fr *http2.Framer) error { return fr.WriteSettingsAck() })
}

// onWindowUpdate opens a send window, the connection's (stream 0) or a
// stream's.
func (m *h2Mux) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	m.mu.Lock()
	if f.StreamID == 0 {
		m.connWUReceived++
		m.sendConn += inc
		m.connClosing.note(time.Now(), m.sendConn <= 0)
		if m.sendConn > maxWindow {
			m.mu.Unlock()
			return fmt.Errorf("http2: the server opened the connection window past 2^31-1: %w", http2.ConnectionError(http2.ErrCodeFlowControl))
		}
		streams := m.streamList()
		m.mu.Unlock()
		for _, s := range streams {
			s.wake()
		}
		return nil
	}
	s := m.streams[f.StreamID]
	if s == nil {
		m.mu.Unlock()
		return nil // a stream that ended: its window no longer matters
	}
	s.wuReceived++
	s.sendWin += inc
	s.closing.note(time.Now(), s.sendWin <= 0)
	over := s.sendWin > maxWindow
	m.mu.Unlock()
	if over {
		m.resetStream(s.id, http2.ErrCodeFlowControl, fmt.Errorf("http2: the server opened stream %d's window past 2^31-1", s.id))
		return nil
	}
	s.wake()
	return nil
}

// onGoAway ends the streams the server will not process (ids above its
// last) and stops new ones; the others run on until the server closes.
func (m *h2Mux) onGoAway(f *http2.GoAwayFrame) {
	err := fmt.Errorf("%w (%v, last stream %d)", ErrGoAway, f.ErrCode, f.LastStreamID)
	if debug := f.DebugData(); len(debug) > 0 {
		err = fmt.Errorf("%w (%v, last stream %d: %q)", ErrGoAway, f.ErrCode, f.LastStreamID, debug)
	}
	m.mu.Lock()
	m.goAway = err
	var ended []*h2Stream
	for id, s := range m.streams {
		if id > f.LastStreamID {
			s.err = err
			ended = append(ended, s)
			m.forget(s)
		}
	}
	m.broadcast()
	m.mu.Unlock()
	for _, s := range ended {
		s.wake()
	}
}

// resetStream ends one stream with err and tells the server (RST_STREAM).
func (m *h2Mux) resetStream(id uint32, code http2.ErrCode, err error) {
	m.mu.Lock()
	s := m.streams[id]
	if s != nil {
		if s.err == nil {
			s.err = err
		}
		m.forget(s)
	}
	m.mu.Unlock()
	if s != nil {
		s.wake()
	}
	m.writeFrame(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, code) })
}

// streamList is the open streams. Called with mu held.
func (m *h2Mux) streamList() []*h2Stream {
	l := make([]*h2Stream, 0, len(m.streams))
	for _, s := range m.streams {
		l = append(l, s)
	}
	return l
}

// takeConnUpdate returns the connection window increment to send now
// (0: none yet), counting it as sent; force sends any. Called with mu
// held.
func (m *h2Mux) takeConnUpdate(force int64) int64 {
	if m.recvConnUnsent == 0 || (force == 0 && m.recvConnUnsent < h2RecvConnWindow/4) {
		return 0
	}
	inc := m.recvConnUnsent
	m.recvConnUnsent = 0
	m.recvConn += inc
	m.connWUSent++
	return inc
}

// sendWindowUpdates sends a stream's and the connection's increments, if
// any.
func (m *h2Mux) sendWindowUpdates(id uint32, streamInc, connInc int64) {
	if streamInc > 0 {
		m.writeFrame(func(fr *http2.Framer) error { return fr.WriteWindowUpdate(id, uint32(streamInc)) })
	}
	if connInc > 0 {
		m.writeFrame(func(fr *http2.Framer) error { return fr.WriteWindowUpdate(0, uint32(connInc)) })
	}
}
