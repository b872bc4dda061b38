package flow

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The client's window accounting against a real Go HTTP/2 server (net/http's
// own, h2c with prior knowledge) on loopback: what the windows allow is
// exactly what moves, and a write waits on the window that is shut.

// h2TestWindow is the test server's stream window, smaller than its
// connection window, so a paused stream shuts its own window first.
const (
	h2TestWindow     = 256 << 10
	h2TestConnWindow = 4 << 20
)

// startH2Server serves handler over h2c on loopback with the test's
// windows and returns the h2c:// target.
func startH2Server(t *testing.T, handler http.HandlerFunc) Target {
	t.Helper()
	_, target := newH2Server(t, handler, &http.HTTP2Config{MaxReceiveBufferPerStream: h2TestWindow, MaxReceiveBufferPerConnection: h2TestConnWindow})
	return target
}

// newH2Server serves handler over h2c on loopback with cfg until the test
// ends, and returns the server and its h2c:// target.
func newH2Server(t *testing.T, handler http.HandlerFunc, cfg *http.HTTP2Config) (*http.Server, Target) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: handler, Protocols: protos, HTTP2: cfg}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	target, err := ParseTarget("h2c://" + ln.Addr().String() + "/h2")
	if err != nil {
		t.Fatal(err)
	}
	return srv, target
}

// openH2 dials target and opens a stream with hello; the connection is
// closed at the test's end.
func openH2(t *testing.T, target Target, hello Hello) (Mux, Conn) {
	t.Helper()
	mux, err := DialMux(context.Background(), target, SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mux.Close() })
	c, err := mux.OpenStream(context.Background(), hello)
	if err != nil {
		t.Fatal(err)
	}
	return mux, c
}

// waitFor polls cond for at most 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitTestWindows waits for startH2Server's SETTINGS and connection
// WINDOW_UPDATE. Until they arrive the client may send on HTTP/2's default
// 65535-byte windows (RFC 9113 6.9.2), which shut stream and connection
// at once: on a busy machine a test's stream window then shut before the
// server's windows were known, and the connection's read 0.
func waitTestWindows(t *testing.T, mux Mux) {
	t.Helper()
	m := mux.(*h2Mux)
	waitFor(t, "the server's SETTINGS and connection window", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.peerInitWindow == h2TestWindow && m.connWUReceived > 0
	})
}

// TestH2UploadStreamWindow: a handler that stops reading shuts its
// stream's window after exactly the window's bytes; the client's write then
// waits on the stream window (not the connection's, not TCP), while a
// second stream on the same connection moves on; reading again reopens it.
func TestH2UploadStreamWindow(t *testing.T) {
	resume := make(chan struct{})
	var slowRead, fastRead = make(chan int64, 1), make(chan int64, 1)
	target := startH2Server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		br := bufio.NewReader(r.Body)
		line, _ := br.ReadString('\n') // the hello line
		if strings.Contains(line, `"stream":1`) {
			n, _ := io.Copy(io.Discard, br)
			fastRead <- n
			return
		}
		<-resume
		n, _ := io.Copy(io.Discard, br)
		slowRead <- n
	})
	mux, slow := openH2(t, target, Hello{Direction: Up})
	waitTestWindows(t, mux)
	sc := slow.(StreamConn)
	payload := make([]byte, 16<<10)
	written := make(chan int64, 1)
	go func() {
		var n int64
		for range 40 { // 640 KiB: more than the stream window
			m, err := slow.WritePayload(payload)
			n += int64(m)
			if err != nil {
				break
			}
		}
		written <- n
	}()
	waitFor(t, "the stream window to shut", func() bool { return sc.StreamLayer().SendStreamWindow == 0 })
	time.Sleep(50 * time.Millisecond)
	st := sc.StreamLayer()
	// The first writes may wait a moment on the connection's window, before
	// the server's first WINDOW_UPDATE widens it from 64 KiB.
	if st.BlockedStream < 40*time.Millisecond || st.BlockedConn > 20*time.Millisecond || st.StreamClosedAt.IsZero() {
		t.Errorf("blocked stream %v conn %v, closed at %v: want the stream window's wait only", st.BlockedStream, st.BlockedConn, st.StreamClosedAt)
	}
	if st.SendConnWindow <= 0 || st.Source != "frames" {
		t.Errorf("connection window %d, source %q: want open, frames", st.SendConnWindow, st.Source)
	}
	// A second stream at full speed on the same connection is not held.
	fast, err := mux.OpenStream(context.Background(), Hello{Direction: Up, Stream: 1})
	if err != nil {
		t.Fatal(err)
	}
	for range 64 { // 1 MiB: four times the stream window
		if _, err := fast.WritePayload(payload); err != nil {
			t.Fatal(err)
		}
	}
	fast.(HalfCloser).CloseWrite()
	if n := <-fastRead; n != 64*(16<<10+FrameHeaderSize) {
		t.Errorf("fast stream: the server read %d bytes, want %d", n, 64*(16<<10+FrameHeaderSize))
	}
	close(resume)
	n := <-written
	slow.(HalfCloser).CloseWrite()
	if got := <-slowRead; got != n+40*FrameHeaderSize {
		t.Errorf("slow stream: the server read %d bytes, the client wrote %d payload in 40 frames", got, n)
	}
	if after := sc.StreamLayer(); after.WindowUpdatesReceived == 0 {
		t.Errorf("no WINDOW_UPDATE counted on stream 0 after the server read again")
	}
	fast.Close()
	slow.Close()
}

// TestH2UploadWindowExact: the bytes sent before the stream window shut
// are the server's window to the byte: hello line, frame headers and
// payload, all DATA.
func TestH2UploadWindowExact(t *testing.T) {
	release := make(chan struct{})
	target := startH2Server(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
	})
	mux, err := DialMux(context.Background(), target, SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer mux.Close()
	defer close(release)
	waitTestWindows(t, mux)
	c, err := mux.OpenStream(context.Background(), Hello{Direction: Up})
	if err != nil {
		t.Fatal(err)
	}
	var sent int64
	line, _ := helloLine(Hello{Direction: Up})
	sent += int64(len(line))
	payload := make([]byte, 10000) // not a divisor of the window
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n, err := c.WritePayload(payload)
			if err != nil || n < len(payload) {
				return
			}
		}
	}()
	sc := c.(StreamConn)
	waitFor(t, "the stream window to shut", func() bool { return sc.StreamLayer().SendStreamWindow == 0 })
	h := c.(*h2Conn).tcpConn.conn.(*h2Stream)
	h.m.mu.Lock()
	connWin := h.m.sendConn
	h.m.mu.Unlock()
	if want := int64(h2TestConnWindow - h2TestWindow); connWin != want {
		t.Errorf("connection window %d after the stream's shut, want %d (the server's %d less the stream's %d)", connWin, want, h2TestConnWindow, h2TestWindow)
	}
	c.Close()
	<-done
}

// TestH2DownloadWindow: a client that does not read leaves exactly its
// stream window unread; the server's writes then wait, and reading gives
// the window back as WINDOW_UPDATEs.
func TestH2DownloadWindow(t *testing.T) {
	wrote := make(chan int64, 1)
	target := startH2Server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		buf := make([]byte, 32<<10)
		var n int64
		for n < 4*h2RecvStreamWindow {
			m, err := w.Write(buf)
			if err == nil {
				err = rc.Flush()
			}
			n += int64(m)
			if err != nil {
				break
			}
		}
		wrote <- n
	})
	_, c := openH2(t, target, Hello{Direction: Down})
	sc := c.(StreamConn)
	waitFor(t, "the receive window to shut", func() bool { return sc.StreamLayer().RecvStreamWindow == 0 })
	h := c.(*h2Conn).tcpConn.conn.(*h2Stream)
	h.m.mu.Lock()
	queued := h.recv.Len()
	h.m.mu.Unlock()
	if queued != h2RecvStreamWindow {
		t.Errorf("%d bytes queued unread, want the stream window, %d", queued, h2RecvStreamWindow)
	}
	raw := c.(*h2Conn).tcpConn.conn
	var read int64
	buf := make([]byte, 64<<10)
	for {
		n, err := raw.Read(buf)
		read += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if w := <-wrote; read != w {
		t.Errorf("read %d bytes, the server wrote %d", read, w)
	}
	if st := sc.StreamLayer(); st.WindowUpdatesSent < 4 {
		t.Errorf("%d WINDOW_UPDATEs sent for 4 windows read, want at least 4", st.WindowUpdatesSent)
	}
	c.Close()
}

// TestH2GoAwayAndStreamLimit: the server's SETTINGS_MAX_CONCURRENT_STREAMS
// holds a second stream until the first ends; its GOAWAY (a graceful
// shutdown) lets the open stream finish and refuses new ones, naming it.
func TestH2GoAwayAndStreamLimit(t *testing.T) {
	release := make(chan struct{})
	srv, target := newH2Server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		<-release
		io.WriteString(w, "bye")
	}, &http.HTTP2Config{MaxConcurrentStreams: 1})
	mux, first := openH2(t, target, Hello{Direction: Down})
	raw := first.(*h2Conn).tcpConn.conn
	h := raw.(*h2Stream)
	waitFor(t, "the response headers (so the server's SETTINGS came first)", func() bool {
		h.m.mu.Lock()
		defer h.m.mu.Unlock()
		return h.status != ""
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := mux.OpenStream(ctx, Hello{Direction: Down, Stream: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a second stream beyond the server's limit of 1: %v, want it held until the deadline", err)
	}
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	waitFor(t, "the GOAWAY", func() bool {
		h.m.mu.Lock()
		defer h.m.mu.Unlock()
		return h.m.goAway != nil
	})
	if _, err := mux.OpenStream(context.Background(), Hello{Direction: Down, Stream: 2}); !errors.Is(err, ErrGoAway) {
		t.Errorf("a stream after the GOAWAY: %v, want ErrGoAway", err)
	}
	close(release)
	b, err := io.ReadAll(readerFunc(raw.Read))
	if err != nil || string(b) != "bye" {
		t.Errorf("the open stream after the GOAWAY read %q, %v; want the rest of its response", b, err)
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestH2ServerReset: a stream the server resets (RST_STREAM) ends with an
// error that says so, and another stream on the connection goes on.
func TestH2ServerReset(t *testing.T) {
	target := startH2Server(t, func(w http.ResponseWriter, r *http.Request) {
		line, _ := bufio.NewReader(r.Body).ReadString('\n')
		if strings.Contains(line, `"stream":1`) {
			io.WriteString(w, "fine")
			return
		}
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // net/http resets the stream
	})
	mux, reset := openH2(t, target, Hello{Direction: Down})
	if _, _, err := reset.Read(make([]byte, 10)); err == nil || !strings.Contains(err.Error(), "reset stream 1") {
		t.Errorf("read of the reset stream: %v, want the server's reset named", err)
	}
	other, err := mux.OpenStream(context.Background(), Hello{Direction: Down, Stream: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(readerFunc(other.(*h2Conn).tcpConn.conn.Read))
	if err != nil || string(b) != "fine" {
		t.Errorf("the stream beside the reset one read %q, %v", b, err)
	}
	reset.Close()
	other.Close()
}

// TestH2EveryReaderWakes: readers waiting on one stream at once (the
// session's, and Close draining what the server still sends) all see the
// response's end. With a one-token wake-up only one of them did, and the
// other waited on until the whole connection closed: bp-client's run then
// never ended.
func TestH2EveryReaderWakes(t *testing.T) {
	target := startH2Server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		io.Copy(io.Discard, r.Body) // the response ends with the request
	})
	_, c := openH2(t, target, Hello{Direction: Up})
	s := c.(*h2Conn).tcpConn.conn.(*h2Stream)
	const readers = 4
	done := make(chan error, readers)
	for range readers {
		go func() {
			_, err := s.Read(make([]byte, 16))
			done <- err
		}()
	}
	time.Sleep(200 * time.Millisecond) // all of them waiting: nothing was sent
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(5 * time.Second)
	for k := range readers {
		select {
		case err := <-done:
			if !errors.Is(err, io.EOF) {
				t.Errorf("reader: %v, want io.EOF (the response's end)", err)
			}
		case <-timeout:
			t.Fatalf("%d of %d readers saw the response's end; the others still wait", k, readers)
		}
	}
}
