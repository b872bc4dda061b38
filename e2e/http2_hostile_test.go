package e2e

import (
	"bytes"
	be "encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Hostile HTTP/2 peers, written with x/net's Framer, against bp-server:
// each gets a clear error, counted, and the other streams and connections
// are served.

// rawH2 is a hand-driven HTTP/2 client connection.
type rawH2 struct {
	t    *testing.T
	nc   net.Conn
	fr   *http2.Framer
	henc *hpack.Encoder
	hbuf bytes.Buffer
}

// dialRawH2 connects with prior knowledge: preface and empty SETTINGS.
func dialRawH2(t *testing.T, addr string) *rawH2 {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	r := &rawH2{t: t, nc: nc, fr: http2.NewFramer(nc, nc)}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.henc = hpack.NewEncoder(&r.hbuf)
	if _, err := nc.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return r
}

// open starts a run on stream id: HEADERS, then the hello line as DATA.
func (r *rawH2) open(id uint32, runID string) {
	r.t.Helper()
	r.hbuf.Reset()
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", r.nc.RemoteAddr().String()}, {":path", "/h2"}} {
		r.henc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.hbuf.Bytes(), EndHeaders: true}); err != nil {
		r.t.Fatal(err)
	}
	hello := fmt.Sprintf(`BP/1 {"type":"hello","version":1,"run_id":%q,"direction":"up"}`+"\n", runID)
	if err := r.fr.WriteData(id, false, []byte(hello)); err != nil {
		r.t.Fatal(err)
	}
}

// payload sends n payload bytes on stream id, as one framed-TCP data frame.
func (r *rawH2) payload(id uint32, n int) {
	r.t.Helper()
	b := make([]byte, 5+n)
	b[0] = 'D'
	be.BigEndian.PutUint32(b[1:], uint32(n))
	for len(b) > 0 {
		m := min(len(b), 16384)
		if err := r.fr.WriteData(id, false, b[:m]); err != nil {
			r.t.Fatal(err)
		}
		b = b[m:]
	}
}

// finish sends the run's fin (total payload bytes) and ends the stream.
func (r *rawH2) finish(id uint32, total int) {
	r.t.Helper()
	body := fmt.Sprintf(`{"type":"fin","bytes":%d}`, total)
	b := append([]byte{'C', 0, 0, 0, 0}, body...)
	be.BigEndian.PutUint32(b[1:], uint32(len(body)))
	if err := r.fr.WriteData(id, true, b); err != nil {
		r.t.Fatal(err)
	}
}

// until reads frames (within 10 s) until want says so, and returns that
// frame; nil and the error when the connection ends first.
func (r *rawH2) until(want func(http2.Frame) bool) (http2.Frame, error) {
	r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		if want(f) {
			return f, nil
		}
	}
}

// closedLine waits for the server's last line of runID's stream:
// "connection closed", or "connection failed" with its error.
func closedLine(t *testing.T, srv *Server, runID string) map[string]any {
	t.Helper()
	var line map[string]any
	eventually(t, 10*time.Second, func() string {
		for _, l := range append(srv.Logs("connection closed"), srv.Logs("connection failed")...) {
			if l["run"] == runID {
				line = l
				return ""
			}
		}
		return "no connection closed line for run " + runID
	})
	return line
}

// TestHTTP2Hostile: floods, a reset mid-run, a client's GOAWAY and a
// stream that never ends, while a bp-client run goes on beside them.
func TestHTTP2Hostile(t *testing.T) {
	srv := startServer(t, "--idle-timeout", "1s")
	bystander := startClient(t, "--target", "h2c://"+srv.HTTPAddr+"/h2", "--duration", "4s", "--rate", "200", "--streams", "2")
	before := scrape(t, srv.MetricsURL())

	for _, flood := range []struct {
		reason string
		send   func(*http2.Framer) error
	}{
		{"settings_flood", func(fr *http2.Framer) error { return fr.WriteSettings() }},
		{"window_update_flood", func(fr *http2.Framer) error { return fr.WriteWindowUpdate(0, 1) }},
		{"ping_flood", func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{1}) }},
	} {
		t.Run(flood.reason, func(t *testing.T) {
			r := dialRawH2(t, srv.HTTPAddr)
			f, err := floodUntilGoAway(r, flood.send)
			if err != nil {
				t.Fatalf("no GOAWAY before the connection ended: %v", err)
			}
			ga := f.(*http2.GoAwayFrame)
			if ga.ErrCode != http2.ErrCodeEnhanceYourCalm || !strings.Contains(string(ga.DebugData()), flood.reason) {
				t.Errorf("GOAWAY %v %q: want ENHANCE_YOUR_CALM naming %s", ga.ErrCode, ga.DebugData(), flood.reason)
			}
			if _, err := r.until(func(http2.Frame) bool { return false }); err == nil {
				t.Errorf("the connection stayed open after the GOAWAY")
			}
			eventually(t, 5*time.Second, func() string {
				m := scrape(t, srv.MetricsURL())
				if v, _ := m.Get("bp_http2_protocol_errors_total", "reason", flood.reason); v != 1 {
					return fmt.Sprintf("bp_http2_protocol_errors_total{reason=%q} = %v, want 1 (the flood)", flood.reason, v)
				}
				return ""
			})
		})
	}

	t.Run("reset_mid_run", func(t *testing.T) {
		r := dialRawH2(t, srv.HTTPAddr)
		r.open(1, "h2-reset")
		r.open(3, "h2-beside-reset")
		r.payload(1, 100000)
		r.payload(3, 100000)
		eventually(t, 10*time.Second, func() string { // reset a run, not a hello
			for _, l := range srv.Logs("connection opened") {
				if l["run"] == "h2-reset" {
					return ""
				}
			}
			return "run h2-reset not opened"
		})
		if err := r.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
			t.Fatal(err)
		}
		r.payload(3, 200000) // the other stream on the connection goes on
		r.finish(3, 300000)
		l := closedLine(t, srv, "h2-reset")
		if err, _ := l["err"].(string); !strings.Contains(err, "reset the stream") {
			t.Errorf("reset stream's line: err %q, want the reset named", l["err"])
		}
		if l := closedLine(t, srv, "h2-beside-reset"); l["read_bytes"] != float64(300000) || l["err"] != nil {
			t.Errorf("the stream beside the reset one: %v, want 300000 bytes read and no error", l)
		}
	})

	t.Run("client_goaway", func(t *testing.T) {
		r := dialRawH2(t, srv.HTTPAddr)
		r.open(1, "h2-goaway")
		r.payload(1, 100000)
		if err := r.fr.WriteGoAway(0, http2.ErrCodeNo, []byte("leaving")); err != nil {
			t.Fatal(err)
		}
		r.payload(1, 100000) // a stream open before the GOAWAY runs to its end
		r.finish(1, 200000)
		if l := closedLine(t, srv, "h2-goaway"); l["read_bytes"] != float64(200000) || l["err"] != nil {
			t.Errorf("the stream open at the GOAWAY: %v, want 200000 bytes read and no error", l)
		}
		if _, err := r.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }); err != nil {
			t.Errorf("the server did not answer the GOAWAY with its own: %v", err)
		}
	})

	t.Run("never_end_stream", func(t *testing.T) {
		r := dialRawH2(t, srv.HTTPAddr)
		r.open(1, "h2-silent")
		r.payload(1, 50000) // and then nothing: no fin, no END_STREAM
		f, err := r.until(func(f http2.Frame) bool {
			_, rst := f.(*http2.RSTStreamFrame)
			return rst || (f.Header().StreamID == 1 && f.Header().Flags.Has(http2.FlagDataEndStream))
		})
		if err != nil && !errors.Is(err, net.ErrClosed) {
			t.Fatalf("the silent stream was never ended: %v", err)
		}
		t.Logf("the server ended the silent stream with %v", f)
		if l := closedLine(t, srv, "h2-silent"); !strings.Contains(fmt.Sprint(l["err"]), "idle") {
			t.Errorf("silent stream's line: err %v, want idle", l["err"])
		}
	})

	after := scrape(t, srv.MetricsURL())
	for _, reason := range []string{"reset", "idle"} {
		if d := after.Value(t, "bp_connection_errors_total", "protocol", "http2", "reason", reason) -
			before.Value(t, "bp_connection_errors_total", "protocol", "http2", "reason", reason); d != 1 {
			t.Errorf("bp_connection_errors_total{protocol=http2,reason=%s} grew by %v, want 1", reason, d)
		}
	}
	if d := after.Value(t, "bp_http2_frames_received_total", "type", "GOAWAY") - before.Value(t, "bp_http2_frames_received_total", "type", "GOAWAY"); d < 1 {
		t.Errorf("bp_http2_frames_received_total{type=GOAWAY} grew by %v, want the client's GOAWAY counted", d)
	}
	sum, code := bystander.Finish(t, 30*time.Second)
	if code != 0 || !sum.Completed || sum.BytesAcked != sum.BytesWritten {
		t.Errorf("the bystander run beside the hostile peers: exit %d, %+v", code, sum)
	}
}

// floodUntilGoAway floods r with send while it reads, as a peer's HTTP/2
// stack does (a flooder that never reads fills the socket with the
// server's acks, and the server's writer, stuck mid-frame, leaves no
// moment for a GOAWAY: it then closes without one), and returns the
// GOAWAY it read.
func floodUntilGoAway(r *rawH2, send func(*http2.Framer) error) (http2.Frame, error) {
	type read struct {
		f   http2.Frame
		err error
	}
	got := make(chan read, 1)
	go func() {
		f, err := r.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
		got <- read{f, err}
	}()
	for range 3000 {
		if send(r.fr) != nil {
			break // the server closed: the rest is refused
		}
	}
	res := <-got
	return res.f, res.err
}

// TestHTTP2FloodsReadGoAway: flood after flood, each flooder reads the
// server's GOAWAY before its connection ends. x/net's server closes its
// connection as soon as a write fails, as those after the GOAWAY do; when
// that close came while the tap still drained the flooder's frames, the
// connection was reset and the GOAWAY lost with it (2 floods in 300 before
// the tap held the close back; 0 in 900 after).
func TestHTTP2FloodsReadGoAway(t *testing.T) {
	srv := startServer(t)
	const floods = 300
	missed := 0
	for i := range floods {
		r := dialRawH2(t, srv.HTTPAddr)
		if _, err := floodUntilGoAway(r, func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{1}) }); err != nil {
			missed++
			t.Errorf("flood %d: no GOAWAY before the connection ended: %v", i, err)
		}
		r.nc.Close()
	}
	eventually(t, 5*time.Second, func() string {
		m := scrape(t, srv.MetricsURL())
		if v, _ := m.Get("bp_http2_protocol_errors_total", "reason", "ping_flood"); v != floods {
			return fmt.Sprintf("bp_http2_protocol_errors_total{reason=\"ping_flood\"} = %v, want %d", v, floods)
		}
		return ""
	})
}
