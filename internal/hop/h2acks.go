package hop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// Ack streams: a browser's upload over HTTP/2 (fetch with a streaming
// body) is half duplex, so its acks go on a sibling stream of the same
// connection (docs/HTTP2.md, "The browser"). The page opens
// GET AckStreamPath first; the answer's AckStreamHeader names it with an
// id the server drew at random, and its body then streams the acks, as
// control frames, of the one upload that names the id
// (POST HTTP2Path?acks=ID). From a browser both streams come on one
// connection; behind a hop (Caddy, HAProxy) they may reach bp-server on
// two of the hop's, so the id, which only a page of this origin can read,
// is what pairs them, not the connection.

// AckStreamPath is where a browser opens an upload's ack stream.
const AckStreamPath = HTTP2Path + "/acks"

// AckStreamHeader is the response header that names an ack stream.
const AckStreamHeader = "Bp-Ack-Stream"

// The bounds of ack streams. Unclaimed ones cost a stream and a goroutine
// each until an upload claims them or ackClaimTimeout passes; claimed
// ones are bounded by the runs' limit (--max-connections), since each
// belongs to an admitted run.
const (
	maxUnclaimedAckStreams = 64
	ackClaimTimeout        = 10 * time.Second
	ackIDBytes             = 16
)

// ackStreams are the open ack streams by id. The zero value is ready.
type ackStreams struct {
	mu        sync.Mutex
	byID      map[string]*ackEntry
	unclaimed int
}

// ackEntry is one open ack stream.
type ackEntry struct {
	stream  *flow.AckStream
	claimed chan struct{} // closed when an upload claims it
	taken   bool
}

// open registers a new ack stream; false when the unclaimed ones are at
// their bound.
func (a *ackStreams) open() (string, *ackEntry, bool) {
	b := make([]byte, ackIDBytes)
	rand.Read(b) // never fails (crypto/rand)
	id := hex.EncodeToString(b)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.unclaimed >= maxUnclaimedAckStreams {
		return "", nil, false
	}
	if a.byID == nil {
		a.byID = map[string]*ackEntry{}
	}
	e := &ackEntry{stream: flow.NewAckStream(), claimed: make(chan struct{})}
	a.byID[id] = e
	a.unclaimed++
	return id, e, true
}

// claim gives an upload the ack stream id, or says why not: an HTTP
// status and the reason.
func (a *ackStreams) claim(id string) (*flow.AckStream, int, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.byID[id]
	switch {
	case len(id) != 2*ackIDBytes:
		return nil, http.StatusBadRequest, "malformed ack stream id: open one with GET " + AckStreamPath
	case e == nil:
		return nil, http.StatusNotFound, "no ack stream " + id + " (never opened, expired after " + ackClaimTimeout.String() + " unclaimed, or ended)"
	case e.taken:
		return nil, http.StatusConflict, "ack stream " + id + " already carries another upload's acks"
	}
	e.taken = true
	a.unclaimed--
	close(e.claimed)
	return e.stream, 0, ""
}

// expire removes an unclaimed entry; false when an upload claimed it
// meanwhile.
func (a *ackStreams) expire(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byID[id].taken {
		return false
	}
	delete(a.byID, id)
	a.unclaimed--
	return true
}

// remove forgets a claimed entry whose stream ended.
func (a *ackStreams) remove(id string) {
	a.mu.Lock()
	delete(a.byID, id)
	a.mu.Unlock()
}

// AckStream returns the GET AckStreamPath handler: it opens an ack
// stream, names it in the response's headers, then streams the acks of
// the upload that claims it until that run ends. One that no upload
// claims within ackClaimTimeout ends empty.
func (h *Hop) AckStream(ctx context.Context) http.HandlerFunc {
	connCtx := h.ConnContext(ctx)
	return func(w http.ResponseWriter, r *http.Request) {
		if h2Request(w, r, http.MethodGet, "an ack stream is a sibling of its upload on one HTTP/2 connection", "GET an ack stream (docs/HTTP2.md)") == nil ||
			!h.Guard.AdmitOrigin(w, r, flow.HTTP2) {
			return
		}
		id, e, ok := h.acks.open()
		if !ok {
			w.Header().Set("Retry-After", "1")
			h.Guard.RejectHTTP2(w, r, "limit", http.StatusServiceUnavailable, "too many ack streams waiting for their uploads")
			return
		}
		w.Header().Set(AckStreamHeader, id)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		rctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(connCtx, cancel)()
		if rc.Flush() != nil || !waitClaimed(rctx, e.claimed) {
			if h.acks.expire(id) {
				return
			}
		}
		defer h.acks.remove(id)
		// A write error is the page's stream gone: its upload goes on.
		_ = e.stream.Serve(rctx, w, rc.Flush)
	}
}

// waitClaimed waits for an upload to claim the stream, within
// ackClaimTimeout.
func waitClaimed(ctx context.Context, claimed <-chan struct{}) bool {
	t := time.NewTimer(ackClaimTimeout)
	defer t.Stop()
	select {
	case <-claimed:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// claimAcks takes the ack stream r names (?acks=ID) for its upload: nil
// and true when it names none, false when refused (answered and counted).
func (h *Hop) claimAcks(w http.ResponseWriter, r *http.Request) (*flow.AckStream, bool) {
	if !r.URL.Query().Has("acks") {
		return nil, true
	}
	s, status, why := h.acks.claim(r.URL.Query().Get("acks"))
	if s == nil {
		h.Guard.RejectHTTP2(w, r, "ack_stream", status, why)
		return nil, false
	}
	return s, true
}
