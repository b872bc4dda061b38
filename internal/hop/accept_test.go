package hop

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/go-backpressure/go-backpressure/internal/ratelog"
	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
)

// failingListener fails its first n Accepts with err, then accepts from
// the real listener.
type failingListener struct {
	net.Listener
	n   int
	err error
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.n > 0 {
		l.n--
		return nil, l.err
	}
	return l.Listener.Accept()
}

// TestRetryListener: EMFILE is waited out with a growing back-off and
// counted, and the next connection is accepted; Close ends a waiting
// Accept.
func TestRetryListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.NewListener(prometheus.NewRegistry())
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	ln := newRetryListener(&failingListener{Listener: inner, n: 4, err: emfile}, "tcp", m.AcceptErrors,
		ratelog.New(slog.New(slog.DiscardHandler)))
	defer ln.Close()
	go func() {
		if c, err := net.Dial("tcp", inner.Addr().String()); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	began := time.Now()
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("Accept after 4 EMFILE: %v", err)
	}
	c.Close()
	// 5 + 10 + 20 + 40 ms of back-off.
	if took := time.Since(began); took < 75*time.Millisecond {
		t.Errorf("4 failures took %s, want the back-off (>= 75ms)", took)
	}
	if got := testutil.ToFloat64(m.AcceptErrors.WithLabelValues("tcp", "fd_limit")); got != 4 {
		t.Errorf("fd_limit errors %v, want 4", got)
	}

	stuck := newRetryListener(&failingListener{Listener: inner, n: 1 << 30, err: emfile}, "tcp", m.AcceptErrors,
		ratelog.New(slog.New(slog.DiscardHandler)))
	done := make(chan error, 1)
	go func() { _, err := stuck.Accept(); done <- err }()
	time.Sleep(50 * time.Millisecond)
	stuck.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not end a backing-off Accept")
	}
}

// TestAcceptErrorReason: which errors are retried, under which reason.
func TestAcceptErrorReason(t *testing.T) {
	for _, tt := range []struct {
		err    error
		reason string
		retry  bool
	}{
		{net.ErrClosed, "", false},
		{fmt.Errorf("accept: %w", syscall.EMFILE), "fd_limit", true},
		{syscall.ENFILE, "fd_limit", true},
		{syscall.ENOBUFS, "memory", true},
		{syscall.ENOMEM, "memory", true},
		{syscall.ECONNABORTED, "network", true},
		{syscall.EPROTO, "network", true},
		{syscall.EBADF, "", false},
		{syscall.EINVAL, "", false},
		{os.ErrDeadlineExceeded, "other", true},
		{syscall.EAGAIN, "other", true},
	} {
		if reason, retry := acceptErrorReason(tt.err); reason != tt.reason || retry != tt.retry {
			t.Errorf("%v: %q, retry %v; want %q, %v", tt.err, reason, retry, tt.reason, tt.retry)
		}
	}
}

// TestFDNeed: what the start-up check counts.
func TestFDNeed(t *testing.T) {
	l := config.Limits{MaxConnections: 1000, MaxHTTPConnections: 100}
	if need, unb := fdNeed(l, 1, 1, 1); need != 2000+100+fdMargin || unb {
		t.Errorf("server: %d, %v", need, unb)
	}
	if need, _ := fdNeed(l, 1, 2, 2); need != 4000+200+fdMargin {
		t.Errorf("relay with a metrics listener: %d", need)
	}
	if need, _ := fdNeed(l, 2, 1, 1); need != 3000+100+fdMargin { // TCP and gRPC listeners
		t.Errorf("with a gRPC listener too: need %d", need)
	}
	if need, _ := fdNeed(l, 0, 1, 1); need != 1000+100+fdMargin {
		t.Errorf("no TCP listener: %d", need)
	}
	if _, unb := fdNeed(config.Limits{MaxHTTPConnections: 1}, 1, 1, 1); !unb {
		t.Error("--max-connections 0 fits")
	}
}
