package hop

import (
	"context"
	"net/http"
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

// AckStream returns the AckStreamPath handler. A GET opens an upload's
// ack stream: it names it in the response's headers, then streams the
// acks of the upload that claims it until that run ends. One that no
// upload claims within ackClaimTimeout ends empty. A POST is a
// download's ack stream (h2down.go).
func (h *Hop) AckStream(ctx context.Context) http.HandlerFunc {
	connCtx := h.ConnContext(ctx)
	downloadAcks := h.downloadAcks(connCtx)
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			downloadAcks(w, r) // a download's ack stream: h2down.go
			return
		}
		if h2Request(w, r, http.MethodGet, "an ack stream is a sibling of its run on one HTTP/2 connection", "GET an upload's ack stream, or POST a download's (docs/HTTP2.md)") == nil ||
			!h.Guard.AdmitOrigin(w, r, flow.HTTP2) {
			return
		}
		id, e, ok := h.acks.open(flow.NewAckStream())
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
		_ = e.value.Serve(rctx, w, rc.Flush)
	}
}

// claimRefusal words a refused claim of id (status from pairings.claim):
// what names a stream of its kind, how one opens, what took it.
func claimRefusal(status int, id, kind, how, takenBy string) string {
	switch status {
	case http.StatusBadRequest:
		return "malformed " + kind + " id: open one with " + how
	case http.StatusNotFound:
		return "no " + kind + " " + id + " (never opened, expired after " + ackClaimTimeout.String() + " unclaimed, or ended)"
	}
	return kind + " " + id + " already carries " + takenBy
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
	id := r.URL.Query().Get("acks")
	s, status := h.acks.claim(id, nil)
	if s == nil {
		h.Guard.RejectHTTP2(w, r, "ack_stream", status, claimRefusal(status, id, "ack stream", "GET "+AckStreamPath, "another upload's acks"))
		return nil, false
	}
	return s, true
}
