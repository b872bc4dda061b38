package hop

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// HTTP/2 on the HTTP listener (docs/HTTP2.md): h2 by ALPN over TLS, h2c
// with prior knowledge on plain TCP, HTTP/1.1 (and so WebSocket upgrades)
// beside them. x/net's server runs the frames, behind the hop's tap.

// The server's HTTP/2 settings. A stream's window is what one slow run
// leaves unread before the client's writes to it block; the connection's
// is the streams' together (up to 64 of them at the full window), so a
// slow stream cannot shut the connection's window on the fast ones: the
// server gives the connection window back only as handlers read.
const (
	H2StreamWindow = 1 << 20
	H2ConnWindow   = 64 << 20
	h2MaxStreams   = 250
	h2MaxFrame     = 1 << 20
)

// HTTP2Path is where HTTP/2 runs are served: one POST per run.
const HTTP2Path = "/h2"

// socketKey is the context key of the connection an HTTP/2 request
// arrived on.
type socketKey struct{}

// tapKey is the context key of the tap of the connection an HTTP/2
// request arrived on: its body's reads are counted against it.
type tapKey struct{}

// Socket is the connection r arrived on over HTTP/2 (TLS or TCP), shared
// by its streams; nil for HTTP/1.1.
func Socket(r *http.Request) net.Conn {
	c, _ := r.Context().Value(socketKey{}).(net.Conn)
	return c
}

// HTTP2 returns the HTTP/2 handler: the guard (limit), the ack stream
// the request names (?acks=ID, a browser's upload: h2acks.go; ?acks=post,
// a browser's download, whose ack stream comes later: h2down.go), the hello
// from the request body, then handle, tracked until it returns. A refused
// hello is answered 400 with the reason.
func (h *Hop) HTTP2(ctx context.Context, handle Handler) http.HandlerFunc {
	connCtx := h.ConnContext(ctx)
	return func(w http.ResponseWriter, r *http.Request) {
		sock := h2Request(w, r, http.MethodPost, "use an h2c:// (prior knowledge) or https:// (ALPN h2) target", "POST a run (docs/HTTP2.md)")
		if sock == nil {
			return
		}
		body := countBody(r)
		defer body.release()
		if !h.Guard.AdmitOrigin(w, r, flow.HTTP2) || !h.Guard.AdmitStream(w, r) {
			return
		}
		defer h.Guard.ReleaseStream()
		if wantsAckPost(r) {
			h.download(connCtx, w, r, body, handle)
			return
		}
		acks, ok := h.claimAcks(w, r)
		if !ok {
			return
		}
		var hello *flow.Hello
		var c flow.Conn
		var err error
		if acks != nil {
			defer acks.End()
			hello, c, err = flow.AcceptHTTP2Acks(w, r, sock, h.HelloTimeout, acks)
		} else {
			hello, c, err = flow.AcceptHTTP2(w, r, sock, h.HelloTimeout)
		}
		if err != nil {
			h.Guard.Refused(flow.HTTP2, r.RemoteAddr, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body.claim(hello)
		h.conns.Add(1)
		defer h.conns.Done()
		handle(connCtx, hello, c, r.RemoteAddr)
	}
}

// h2Request is the connection r arrived on over HTTP/2, or nil once it
// answered a request over HTTP/1.1 (505) or of another method than
// method (405), each with why.
func h2Request(w http.ResponseWriter, r *http.Request, method, why505, why405 string) net.Conn {
	sock := Socket(r)
	switch {
	case sock == nil:
		http.Error(w, "HTTP/2 only: "+why505, http.StatusHTTPVersionNotSupported)
		return nil
	case r.Method != method:
		http.Error(w, why405, http.StatusMethodNotAllowed)
		return nil
	}
	return sock
}

// enableHTTP2 makes srv serve HTTP/2 beside HTTP/1.1, through x/net's
// server behind a tap per connection (h2Tap), whose frames and floods are
// counted in m.
func enableHTTP2(srv *http.Server, m *H2Metrics, warn func(string, string, ...any)) {
	h2s := &http2.Server{
		MaxConcurrentStreams:         h2MaxStreams,
		MaxUploadBufferPerStream:     H2StreamWindow,
		MaxUploadBufferPerConnection: H2ConnWindow,
		MaxReadFrameSize:             h2MaxFrame,
		IdleTimeout:                  srv.IdleTimeout,
		CountError:                   func(errType string) { m.errors.WithLabelValues(errType).Inc() },
	}
	// ConfigureServer ties h2s to srv's Shutdown (a GOAWAY to every
	// connection, then each closes when its streams are done); its
	// TLSNextProto entries are replaced below by the tapped ones.
	if err := http2.ConfigureServer(srv, h2s); err != nil {
		panic(err) // only for a TLSConfig with bad cipher suites: srv has none
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	protos.SetUnencryptedHTTP2(true)
	srv.Protocols = protos
	serve := func(hs *http.Server, tap *h2Tap, sock net.Conn, h http.Handler, sawPreface bool) {
		ctx := context.Background()
		if bc, ok := h.(interface{ BaseContext() context.Context }); ok {
			ctx = bc.BaseContext() // net/http's connection context, unexported
		}
		ctx = context.WithValue(context.WithValue(ctx, socketKey{}, sock), tapKey{}, tap)
		var c net.Conn = tap
		if tc, ok := sock.(*tls.Conn); ok {
			c = h2TLSTap{tap, tc}
		}
		defer tap.buf.Close() // what the connection's streams held is gone with it
		h2s.ServeConn(c, &http2.ServeConnOpts{Context: ctx, Handler: h, BaseConfig: hs, SawClientPreface: sawPreface})
	}
	srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
		http2.NextProtoTLS: func(hs *http.Server, c *tls.Conn, h http.Handler) {
			serve(hs, newH2Tap(c, m, warn, false), c, h, false)
		},
		// net/http hands a plain connection that sent the preface over
		// in a tls.Conn shell, after reading the preface.
		"unencrypted_http2": func(hs *http.Server, c *tls.Conn, h http.Handler) {
			u, ok := c.NetConn().(interface{ UnencryptedNetConn() net.Conn })
			if !ok {
				c.NetConn().Close()
				return
			}
			nc := u.UnencryptedNetConn()
			serve(hs, newH2Tap(nc, m, warn, true), nc, h, true)
		},
	}
	// x/net reports connection states of the tap; the bound on HTTP
	// connections (httpConns) knows the socket underneath.
	if state := srv.ConnState; state != nil {
		srv.ConnState = func(c net.Conn, st http.ConnState) {
			switch t := c.(type) {
			case *h2Tap:
				c = t.Conn
			case h2TLSTap:
				c = t.tc
			}
			state(c, st)
		}
	}
}

// h2TLSTap is the tap of a TLS connection: x/net's server reads the TLS
// state through it.
type h2TLSTap struct {
	*h2Tap
	tc *tls.Conn
}

func (t h2TLSTap) ConnectionState() tls.ConnectionState { return t.tc.ConnectionState() }

// H2Metrics are the HTTP/2 server's frames and errors (exported for the
// metrics tests, which keep docs/METRICS.md in step with every binary).
type H2Metrics struct {
	in, out [11]prometheus.Counter // by frame type; [10] is any unknown type
	errors  *prometheus.CounterVec
	// buffered is the DATA received and not yet read by the handlers,
	// over every connection (bp_stream_buffered_bytes{protocol="http2"}).
	buffered flow.StreamBuffer
}

// countBody makes r's body reads count against the stream buffers of
// the connection r arrived on; nil over HTTP/1.1 (a nil countedBody
// counts nothing).
func countBody(r *http.Request) *countedBody {
	t, ok := r.Context().Value(tapKey{}).(*h2Tap)
	if !ok {
		return nil
	}
	b := &countedBody{ReadCloser: r.Body, buf: t.buf}
	r.Body = b
	return b
}

// countedBody is a request body whose reads are taken off its stream's
// count in its connection's stream buffers. x/net does not tell a
// handler its stream's id, so the body claims it by the hello the tap saw
// begin the stream (claim); the reads before, the hello's, are kept until
// then. Unclaimed (no hello, or a refused one), its stream's bytes leave
// at the stream's reset, or with the connection.
type countedBody struct {
	io.ReadCloser
	buf *flow.ConnBuffer

	mu     sync.Mutex
	id     uint32 // the stream's, once claimed
	before int    // bytes read before the claim
	// lazy: the body claims its stream at its first bytes
	// (claimAtFirstRead).
	lazy bool
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	if b.id == 0 && b.lazy && n > 0 {
		b.before += n
		b.claimLocked(flow.NoHello)
	} else if b.id == 0 {
		b.before += n
	} else {
		b.buf.ReadOn(b.id, n)
	}
	b.mu.Unlock()
	return n, err
}

// claim takes the stream whose hello is hello as the body's, and counts
// the reads so far on it. A body that began with no hello (nil) takes the
// earliest stream that began so: exact for one such stream at a time, and
// the connection's count is exact whichever it takes.
func (b *countedBody) claim(hello *flow.Hello) {
	if b == nil {
		return
	}
	key := flow.NoHello
	if hello != nil {
		key = flow.HelloKey(*hello)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.claimLocked(key)
}

// claimAtFirstRead makes a body that carries no hello (a download's ack
// stream) claim its stream with its first bytes: the tap has seen its
// first DATA frame by then, so the claim finds it (a claim before would
// not, and its bytes would stay counted until the stream ended).
func (b *countedBody) claimAtFirstRead() {
	if b != nil {
		b.lazy = true
	}
}

// claimLocked claims the stream of key. Called with mu held.
func (b *countedBody) claimLocked(key string) {
	b.id = b.buf.Claim(key)
	if b.id == 0 && key != flow.NoHello {
		b.id = b.buf.Claim(flow.NoHello) // a hello the tap could not read in the first frame
	}
	if b.id != 0 {
		b.buf.ReadOn(b.id, b.before)
	}
}

// release takes what the body's stream still holds off the count, as
// its handler returns: x/net drops it.
func (b *countedBody) release() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.id != 0 {
		b.buf.Release(b.id)
	}
}

// NewH2Metrics registers the HTTP/2 metrics on reg, every frame type and
// flood reason present from the start.
func NewH2Metrics(reg prometheus.Registerer) *H2Metrics {
	in := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bp_http2_frames_received_total",
		Help: "HTTP/2 frames the server received, by type (the server's own view of its peers' SETTINGS, WINDOW_UPDATE, RST_STREAM, GOAWAY...)."}, []string{"type"})
	out := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bp_http2_frames_sent_total",
		Help: "HTTP/2 frames the server sent, by type."}, []string{"type"})
	m := &H2Metrics{errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bp_http2_protocol_errors_total",
		Help: "HTTP/2 connections and streams the server ended for a peer's error: a flood (settings_flood, ping_flood, window_update_flood) or an error x/net's server found (its names)."}, []string{"reason"})}
	reg.MustRegister(in, out, m.errors)
	for i := range m.in {
		name := "unknown"
		if i < 10 {
			name = http2.FrameType(i).String()
		}
		m.in[i], m.out[i] = in.WithLabelValues(name), out.WithLabelValues(name)
	}
	for _, r := range []string{"settings_flood", "ping_flood", "window_update_flood"} {
		m.errors.WithLabelValues(r)
	}
	return m
}

func frameIndex(t http2.FrameType) int { return min(int(t), 10) }

func (m *H2Metrics) received(t http2.FrameType) { m.in[frameIndex(t)].Inc() }
func (m *H2Metrics) sent(t http2.FrameType)     { m.out[frameIndex(t)].Inc() }
