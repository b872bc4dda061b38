package hop

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-backpressure/go-backpressure/internal/ratelog"
)

// The accept back-off is net/http's: a failed accept() waits 5 ms, then
// twice as long after each failure in a row, at most 1 s, and the next
// success starts over. Out of file descriptors, accept() fails at once
// every time; without the wait the loop would spin a core, and without
// the retry (as before) the process exited and every peer lost its run.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// retryListener is a listener whose Accept outlasts the errors a busy
// server meets (out of file descriptors or memory, a network error passed
// on from a connection): it counts each in bp_accept_errors_total, logs it
// at a bounded rate, waits and tries again. Only a closed listener, or an
// error that says the listener itself is broken, ends Accept.
type retryListener struct {
	net.Listener
	name   string // the listener label: "http", "tcp"
	errs   *prometheus.CounterVec
	warn   *ratelog.Logger
	closed chan struct{}
	once   sync.Once
}

// newRetryListener wraps ln (before TLS, so that the TLS listener's Accept
// retries too).
func newRetryListener(ln net.Listener, name string, errs *prometheus.CounterVec, warn *ratelog.Logger) *retryListener {
	return &retryListener{Listener: ln, name: name, errs: errs, warn: warn, closed: make(chan struct{})}
}

// Accept waits for the next connection, backing off on temporary errors.
func (l *retryListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return c, nil
		}
		reason, retry := acceptErrorReason(err)
		if !retry {
			return nil, err
		}
		delay = min(max(2*delay, acceptBackoffMin), acceptBackoffMax)
		l.errs.WithLabelValues(l.name, reason).Inc()
		l.warn.Warn(reason, "accept failed: backing off", "listener", l.name, "addr", l.Addr().String(),
			"err", err, "retry_in", delay.String())
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-l.closed:
			t.Stop()
			return nil, net.ErrClosed
		}
	}
}

// Close stops a waiting Accept too.
func (l *retryListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// acceptErrorReason sorts an accept error into one of
// metrics.AcceptErrorReasons, and says whether to try again: everything
// but a closed listener and the errors of a broken one (EBADF, EINVAL,
// ENOTSOCK, EFAULT) is worth another try, since exiting ends every
// connection the process serves.
func acceptErrorReason(err error) (reason string, retry bool) {
	if errors.Is(err, net.ErrClosed) {
		return "", false
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return "other", true
	}
	switch errno {
	case syscall.EBADF, syscall.EINVAL, syscall.ENOTSOCK, syscall.EFAULT:
		return "", false
	case syscall.EMFILE, syscall.ENFILE:
		return "fd_limit", true
	case syscall.ENOBUFS, syscall.ENOMEM:
		return "memory", true
	case syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EPROTO, syscall.EPERM, syscall.ENETDOWN,
		syscall.ENOPROTOOPT, syscall.EHOSTDOWN, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EOPNOTSUPP:
		return "network", true // accept(2): errors pending on the new socket
	}
	return "other", true
}
