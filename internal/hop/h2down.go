package hop

import (
	"context"
	"io"
	"net/http"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// Downloads' ack streams: a browser's download over HTTP/2 reads its
// response only once its request body has ended, so the body is the hello
// alone (POST HTTP2Path?acks=post), and what the page sends while it reads
// (its acks; in a `both` run its payload and fin too) comes on a sibling
// stream, a streaming POST AckStreamPath?download=ID. The download's
// answer names ID in AckStreamHeader, drawn at random like an upload's ack
// stream's id (h2acks.go), and its session reads the sibling's body
// (flow.H2Download). A download no sibling claims within ackClaimTimeout
// ends with a refusal line and is counted (reason ack_stream).

// downloadAckParam is the value of a download's ?acks= that asks for an
// ack stream of its own, a POST.
const downloadAckParam = "post"

// downloadSlot is what a download's ack stream hands over to the
// download waiting for it.
type downloadSlot struct {
	body io.ReadCloser
	rc   *http.ResponseController
	// done is closed when the download's run ended: the ack stream's
	// handler may return (its body is no longer read).
	done chan struct{}
}

// wantsAckPost reports whether r is a download whose acks come on a POST
// of their own.
func wantsAckPost(r *http.Request) bool { return r.URL.Query().Get("acks") == downloadAckParam }

// download serves a download whose acks come on a sibling POST: the hello
// (the whole body), the response's headers naming the id, the wait for the
// sibling, then handle on the joined streams. Admitted already (origin,
// the runs' limit).
func (h *Hop) download(connCtx context.Context, w http.ResponseWriter, r *http.Request, body *countedBody, handle Handler) {
	slot := &downloadSlot{done: make(chan struct{})}
	id, e, ok := h.downs.open(slot)
	if !ok {
		w.Header().Set("Retry-After", "1")
		h.Guard.RejectHTTP2(w, r, "limit", http.StatusServiceUnavailable, "too many downloads waiting for their ack streams")
		return
	}
	defer close(slot.done)
	w.Header().Set(AckStreamHeader, id)
	w.Header().Set("Cache-Control", "no-store")
	hello, d, err := flow.AcceptHTTP2Down(w, r, Socket(r), h.HelloTimeout)
	if err != nil {
		h.downs.expire(id)
		w.Header().Del(AckStreamHeader)
		h.Guard.Refused(flow.HTTP2, r.RemoteAddr, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	body.claim(hello)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(connCtx, cancel)()
	if !waitClaimed(ctx, e.claimed) && h.downs.expire(id) {
		if ctx.Err() == nil { // not the page gone, nor a shutdown
			why := "no ack stream (POST " + AckStreamPath + "?download=" + id + ") within " + ackClaimTimeout.String()
			d.Refuse(why)
			h.Guard.RejectStarted(r, "ack_stream", why)
		}
		return
	}
	defer h.downs.remove(id)
	h.conns.Add(1)
	defer h.conns.Done()
	handle(connCtx, hello, d.Join(slot.body, slot.rc), r.RemoteAddr)
}

// downloadAcks returns the POST AckStreamPath handler: the ack stream of
// the download its ?download=ID names, whose body that download's session
// reads until its run ends.
func (h *Hop) downloadAcks(connCtx context.Context) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h2Request(w, r, http.MethodPost, "a download's ack stream is a sibling of its download", "") == nil ||
			!h.Guard.AdmitOrigin(w, r, flow.HTTP2) {
			return
		}
		body := countBody(r)
		body.claimAtFirstRead()
		defer body.release()
		id := r.URL.Query().Get("download")
		rc := http.NewResponseController(w)
		slot, status := h.downs.claim(id, func(s *downloadSlot) { s.body, s.rc = r.Body, rc })
		if slot == nil {
			h.Guard.RejectHTTP2(w, r, "ack_stream", status, claimRefusal(status, id, "download", "POST "+HTTP2Path+"?acks="+downloadAckParam, "another ack stream"))
			return
		}
		// The download's session reads r.Body until its run ends, which
		// a reset of this stream or the server's shutdown bring about
		// too: only then may the handler return.
		<-slot.done
		w.WriteHeader(http.StatusOK)
	}
}
