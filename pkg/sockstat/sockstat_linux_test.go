//go:build linux

package sockstat

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// smallBuffer is the SO_RCVBUF and SO_SNDBUF of the test sockets, small so
// that they fill in milliseconds. The kernel doubles it for bookkeeping.
const smallBuffer = 64 << 10

// tcpPair returns a connected loopback pair with small buffers: writer is the
// dialing side, reader the accepted side. Both are closed at cleanup.
func tcpPair(t testing.TB) (writer, reader *net.TCPConn) {
	t.Helper()
	setBuffer := func(opt int) func(network, address string, c syscall.RawConn) error {
		return func(network, address string, c syscall.RawConn) error {
			var err error
			if cerr := c.Control(func(fd uintptr) {
				err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, smallBuffer)
			}); cerr != nil {
				return cerr
			}
			return err
		}
	}
	// The receive buffer is set on the listener, before the handshake, so that
	// the window scale the accepted socket announces fits it. Plain TCP, not
	// Go's default multipath listener, so the sockets are what they seem.
	lc := net.ListenConfig{Control: setBuffer(unix.SO_RCVBUF)}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{Control: setBuffer(unix.SO_SNDBUF), Timeout: 5 * time.Second}
	dialed, err := d.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close() })
	accepted, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { accepted.Close() })
	return dialed.(*net.TCPConn), accepted.(*net.TCPConn)
}

func newReader(t testing.TB, c any) *Reader {
	t.Helper()
	r, err := NewReader(c)
	if err != nil {
		t.Fatalf("NewReader(%T): %v", c, err)
	}
	return r
}

// fillPipe writes to w until its send buffer is full (a write times out),
// within a bounded time, and returns how many bytes the kernel accepted.
func fillPipe(t *testing.T, w *net.TCPConn) int {
	t.Helper()
	chunk := make([]byte, 16<<10)
	total := 0
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if err := w.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		n, err := w.Write(chunk)
		total += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return total
		}
		if err != nil {
			t.Fatalf("write after %d bytes: %v", total, err)
		}
	}
	t.Fatalf("send buffer still not full after writing %d bytes for 2s", total)
	return 0
}

// pollSample reads r until ok accepts the sample or the bounded deadline
// passes, and returns the last sample.
func pollSample(t *testing.T, r *Reader, ok func(Sample) bool) (Sample, bool) {
	t.Helper()
	var s Sample
	for deadline := time.Now().Add(2 * time.Second); ; {
		if err := r.Read(&s); err != nil {
			t.Fatalf("Read: %v", err)
		}
		if ok(s) {
			return s, true
		}
		if time.Now().After(deadline) {
			return s, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKernelFieldsMatchRunningKernel(t *testing.T) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	major, minor, err := ParseKernelRelease(release)
	if err != nil {
		t.Fatalf("ParseKernelRelease(uname -r = %q): %v", release, err)
	}
	if got, want := KernelFields(), FieldsForKernel(major, minor); got != want {
		t.Errorf("KernelFields() = %s, want %s for %s", got, want, release)
	}
	if !Supported() {
		t.Error("Supported() = false on Linux")
	}
	t.Logf("kernel %s: fields %s; missing: %q", release, KernelFields(), MissingDescription())
}

func TestReadIdleConnection(t *testing.T) {
	w, rd := tcpPair(t)
	for _, c := range []*net.TCPConn{w, rd} {
		var s Sample
		if err := newReader(t, c).Read(&s); err != nil {
			t.Fatalf("Read: %v", err)
		}
		// The release number promises a minimum; the length TCP_INFO
		// returns can only add to it (backports).
		if s.Has&KernelFields() != KernelFields() {
			t.Errorf("Has = %s, want at least KernelFields() = %s", s.Has, KernelFields())
		}
		if s.SendQueue != 0 || s.SendQueueNotSent != 0 || s.RecvQueue != 0 || s.NotSentBytes != 0 || s.Unacked != 0 {
			t.Errorf("idle connection has queued data: %+v", s)
		}
		if s.SndCwnd == 0 {
			t.Errorf("SndCwnd = 0, want the initial congestion window: %+v", s)
		}
		if s.Has&FieldPeerWindow != 0 && s.PeerWindow == 0 {
			t.Errorf("PeerWindow = 0 on an idle connection, want open: %+v", s)
		}
		if s.Has&FieldOwnWindow != 0 && s.OwnWindow == 0 {
			t.Errorf("OwnWindow = 0 on an idle connection, want open: %+v", s)
		}
	}
}

// TestReadBackpressure builds real backpressure on loopback: the reader never
// reads, the writer writes until its send buffer is full. The writer must
// then see a full send queue and a closed peer window, the reader a full
// receive queue and a closed window of its own.
func TestReadBackpressure(t *testing.T) {
	before, netstatErr := ReadNetstat()
	w, rd := tcpPair(t)
	writerStats, readerStats := newReader(t, w), newReader(t, rd)

	written := fillPipe(t, w)
	t.Logf("the kernel accepted %d bytes before write blocked", written)

	// Writer: bytes wait in its send queue, and the peer's window closes.
	ws, ok := pollSample(t, writerStats, func(s Sample) bool {
		return s.SendQueue > 0 && (s.Has&FieldPeerWindow == 0 || s.PeerWindow == 0)
	})
	if !ok {
		t.Errorf("writer: want SendQueue > 0 and PeerWindow == 0 within 2s, got %+v", ws)
	}
	if ws.SendQueue > written {
		t.Errorf("writer: SendQueue = %d, more than the %d bytes written", ws.SendQueue, written)
	}
	if ws.SendQueueNotSent <= 0 || ws.SendQueueNotSent > ws.SendQueue {
		t.Errorf("writer: SendQueueNotSent = %d, want in (0, SendQueue = %d]: the peer window is closed", ws.SendQueueNotSent, ws.SendQueue)
	}
	if ws.Has&FieldNotSentBytes != 0 && int(ws.NotSentBytes) != ws.SendQueueNotSent {
		t.Errorf("writer: NotSentBytes = %d, want SendQueueNotSent = %d (same kernel counter)", ws.NotSentBytes, ws.SendQueueNotSent)
	}
	if ws.RecvQueue != 0 {
		t.Errorf("writer: RecvQueue = %d, want 0: nothing was sent to it", ws.RecvQueue)
	}

	// Reader: everything the writer sent sits unread, and its window is closed
	// (or nearly: the kernel may leave less than one segment open).
	rs, ok := pollSample(t, readerStats, func(s Sample) bool {
		return s.RecvQueue > 0 && (s.Has&FieldOwnWindow == 0 || s.OwnWindow < 16<<10)
	})
	if !ok {
		t.Errorf("reader: want RecvQueue > 0 and OwnWindow < 16 KiB within 2s, got %+v", rs)
	}
	if got, want := rs.RecvQueue+ws.SendQueue, written; got != want {
		t.Errorf("reader RecvQueue %d + writer SendQueue %d = %d, want every written byte (%d) in one queue or the other",
			rs.RecvQueue, ws.SendQueue, got, want)
	}
	if rs.SendQueue != 0 {
		t.Errorf("reader: SendQueue = %d, want 0", rs.SendQueue)
	}

	// The sender has data and a closed window: the kernel counts that time
	// as limited by the receive window.
	if ws.Has&FieldLimited != 0 {
		ws, ok = pollSample(t, writerStats, func(s Sample) bool { return s.RwndLimited > 0 })
		if !ok {
			t.Errorf("writer: RwndLimited = 0 after 2s with a closed peer window: %+v", ws)
		}
		if ws.RwndLimited > ws.BusyTime {
			t.Errorf("writer: RwndLimited %v > BusyTime %v, want a part of it", ws.RwndLimited, ws.BusyTime)
		}
	}
	t.Logf("writer: %+v", ws)
	t.Logf("reader: %+v", rs)

	// The reader's host advertised a zero window at least once more. The
	// counter is host-wide, so other traffic can only add to it.
	if netstatErr != nil {
		t.Fatalf("ReadNetstat: %v", netstatErr)
	}
	after, err := ReadNetstat()
	if err != nil {
		t.Fatalf("ReadNetstat: %v", err)
	}
	if before.Present&after.Present&HasToZeroWindowAdv != 0 && after.ToZeroWindowAdv <= before.ToZeroWindowAdv {
		t.Errorf("TCPToZeroWindowAdv = %d, want more than %d before the window closed", after.ToZeroWindowAdv, before.ToZeroWindowAdv)
	}

	// Once the reader drains its queue, the window reopens.
	drained := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		total := 0
		for total < written {
			n, err := rd.Read(buf)
			total += n
			if err != nil {
				drained <- err
				return
			}
		}
		drained <- nil
	}()
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	ws, ok = pollSample(t, writerStats, func(s Sample) bool {
		return s.SendQueue == 0 && (s.Has&FieldPeerWindow == 0 || s.PeerWindow > 0)
	})
	if !ok {
		t.Errorf("writer after drain: want SendQueue == 0 and PeerWindow > 0, got %+v", ws)
	}
}

// netConnWrapper stands for *tls.Conn or gorilla's *websocket.Conn: a net.Conn
// whose socket is reached through NetConn.
type netConnWrapper struct {
	net.Conn
}

func (w netConnWrapper) NetConn() net.Conn { return w.Conn }

// selfWrapper returns itself from NetConn, forever.
type selfWrapper struct{ net.Conn }

func (w *selfWrapper) NetConn() net.Conn { return w }

func TestNewReaderUnwraps(t *testing.T) {
	w, _ := tcpPair(t)
	tests := []struct {
		name string
		conn any
	}{
		{"TCPConn", w},                 // directly
		{"wrapper", netConnWrapper{w}}, // one NetConn level
		{"wrapper of wrapper", netConnWrapper{netConnWrapper{w}}}, // unwrapped repeatedly
		{"tls.Conn", tls.Client(w, &tls.Config{})},                // the real thing; no handshake needed
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Sample
			if err := newReader(t, tt.conn).Read(&s); err != nil {
				t.Fatalf("Read: %v", err)
			}
			if s.Has&FieldBasic == 0 || s.SndCwnd == 0 {
				t.Errorf("Read through %T: %+v, want a live TCP sample", tt.conn, s)
			}
		})
	}
}

func TestNewReaderRejects(t *testing.T) {
	unixConn := unixPair(t)
	tests := []struct {
		name    string
		conn    any
		wantErr string
	}{
		{"nil", nil, "sockstat: <nil>: no connection"},                                                          // nothing at all
		{"not a conn", "tcp://x", "sockstat: string has neither SyscallConn nor NetConn: not a TCP connection"}, // wrong type
		{"unix socket", unixConn, "sockstat: *net.UnixConn: not a TCP socket (type 1, protocol 0)"},             // a stream, but not TCP
		{"wrapped unix socket", netConnWrapper{unixConn}, "sockstat: sockstat.netConnWrapper: not a TCP socket (type 1, protocol 0)"},
		{"endless wrapper", &selfWrapper{}, "sockstat: *sockstat.selfWrapper: more than 16 NetConn wrappers"}, // a cycle must not hang
		{"pipe", netConnWrapper{pipeConn(t)}, "sockstat: *net.pipe has neither SyscallConn nor NetConn: not a TCP connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(tt.conn)
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("NewReader error = %v, want %q", err, tt.wantErr)
			}
			if r != nil {
				t.Errorf("NewReader returned a Reader with its error")
			}
		})
	}
}

func unixPair(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func pipeConn(t *testing.T) net.Conn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a
}

// TestReadMultipathTCP reads a multipath TCP connection, which Go's
// listeners accept by default since Go 1.24 when the client asks for it.
func TestReadMultipathTCP(t *testing.T) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(true)
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var d net.Dialer
	d.SetMultipathTCP(true)
	c, err := d.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	accepted, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { accepted.Close() })
	if mp, err := accepted.(*net.TCPConn).MultipathTCP(); err != nil || !mp {
		t.Skipf("this kernel does not do multipath TCP (MultipathTCP() = %v, %v)", mp, err)
	}

	r := newReader(t, accepted)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	s, ok := pollSample(t, r, func(s Sample) bool { return s.RecvQueue == 5 })
	if !ok {
		t.Errorf("RecvQueue = %d, want the 5 unread bytes: %+v", s.RecvQueue, s)
	}
	if s.Has&FieldBasic == 0 || s.SndCwnd == 0 {
		t.Errorf("multipath sample without TCP_INFO: %+v", s)
	}
}

func TestReadClosedConnection(t *testing.T) {
	w, _ := tcpPair(t)
	r := newReader(t, w)
	w.Close()
	s := Sample{SendQueue: 7, Has: AllFields}
	err := r.Read(&s)
	if err == nil {
		t.Fatal("Read on a closed connection: no error")
	}
	if s != (Sample{}) {
		t.Errorf("Read on a closed connection left %+v, want a zero Sample", s)
	}
}

func TestReadNetstatPath(t *testing.T) {
	old := netstatPath
	t.Cleanup(func() { netstatPath = old })

	netstatPath = filepath.Join("testdata", "netstat-no-want.txt")
	got, err := ReadNetstat()
	if err != nil {
		t.Fatalf("ReadNetstat: %v", err)
	}
	if got.ToZeroWindowAdv != 41 || got.Present&HasWantZeroWindowAdv != 0 {
		t.Errorf("ReadNetstat(%s) = %+v", netstatPath, got)
	}

	netstatPath = filepath.Join(t.TempDir(), "missing")
	if _, err := ReadNetstat(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadNetstat(missing file) error = %v, want ErrNotExist", err)
	}
}

func TestReadDoesNotAllocate(t *testing.T) {
	w, _ := tcpPair(t)
	r := newReader(t, w)
	var s Sample
	allocs := testing.AllocsPerRun(100, func() {
		if err := r.Read(&s); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Read allocates %v times per call, want 0", allocs)
	}
}

func BenchmarkRead(b *testing.B) {
	w, _ := tcpPair(b)
	r := newReader(b, w)
	var s Sample
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Read(&s); err != nil {
			b.Fatal(err)
		}
	}
}
