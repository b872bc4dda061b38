package flow_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// TestPayloadPoolBounded (issue 13, defect 3): payload buffers are not
// keyed by the sizes peers announce: 100 different sizes up to 16 MiB take
// one buffer per power-of-two class (under 32 MiB in all, where a cache per
// size held 1.6 GB), and none once every run gave its payload back.
func TestPayloadPoolBounded(t *testing.T) {
	pool := flow.NewPayloadPool(64 << 20)
	var releases []func()
	for i := 1; i <= 100; i++ {
		size := i * (flow.MaxPayloadSize / 100)
		p, release, err := pool.Get(size)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != size || !strings.HasPrefix(string(p[:26]), "backpressure backpressure ") {
			t.Fatalf("payload of %d bytes starts %q", len(p), p[:26])
		}
		releases = append(releases, release)
	}
	if used := pool.Used(); used > 32<<20 {
		t.Errorf("100 sizes hold %d bytes, want under 32 MiB", used)
	}
	for _, r := range releases {
		r()
		r() // a second call changes nothing
	}
	if used := pool.Used(); used != 0 {
		t.Errorf("%d bytes still lent after every run ended", used)
	}
}

// TestPayloadMemoryRefused (issue 13, defect 3): a download whose payload
// buffer would take the payload memory past its bound is refused with
// reason payload_memory (WebSocket: close 1013 and the reason); one that
// shares a buffer already lent is not; the memory is free again after.
func TestPayloadMemoryRefused(t *testing.T) {
	pool := flow.NewPayloadPool(1 << 20)
	serverErrs := make(chan error, 8)
	up := flow.NewUpgrader()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, c, err := up.Accept(w, r)
		if err == nil {
			plan := flowtest.ServerPlan(h, flow.ReadSettings{})
			plan.Write.Payload, plan.Write.Payloads, plan.Write.PayloadSize = nil, pool, h.PayloadSize
			_, err = flow.NewSession(c, plan, nil).Run(r.Context())
		}
		serverErrs <- err
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	dial := func(size int) *websocket.Conn {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := flow.EncodeHello(flow.Hello{Direction: flow.Down, PayloadSize: size, TotalBytes: 64 << 20})
		ws.WriteMessage(websocket.TextMessage, b)
		return ws
	}
	// A download that never reads holds its 1 MiB class.
	holder := dial(1 << 20)
	defer holder.Close()
	time.Sleep(100 * time.Millisecond)
	if used := pool.Used(); used != 1<<20 {
		t.Fatalf("pool used %d, want 1 MiB", used)
	}
	// Another class does not fit: refused, and told why.
	refused := dial(300 << 10)
	refused.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := refused.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseTryAgainLater || !strings.Contains(ce.Text, "payload memory") {
		t.Errorf("refused client read %v, want close 1013 about payload memory", err)
	}
	refused.Close()
	if got := flow.ErrorReason(<-serverErrs); got != "payload_memory" {
		t.Errorf("server: reason %s, want payload_memory", got)
	}
	// The same class shares the buffer: it runs.
	sharer := dial(1<<20 - 5)
	sharer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if mt, p, err := sharer.ReadMessage(); err != nil || mt != websocket.BinaryMessage || len(p) != 1<<20-5 {
		t.Errorf("sharing client read %d bytes, %v", len(p), err)
	}
	sharer.Close()
	holder.Close()
	<-serverErrs
	<-serverErrs
	for deadline := time.Now().Add(5 * time.Second); pool.Used() != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if used := pool.Used(); used != 0 {
		t.Errorf("pool used %d after every run ended, want 0", used)
	}
}
