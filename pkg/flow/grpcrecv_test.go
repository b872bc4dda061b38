package flow

import (
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRecvStateCause: the RPC's end is told by the Recv that failed, even
// when the context ends first and the Recv returns after (grpc-go writes
// a too-large message's status before its Recv returns); a stream whose
// Recvs ended cleanly, or never failed, ends as gone.
func TestRecvStateCause(t *testing.T) {
	gone := errors.New("gone")
	tooLarge := status.Error(codes.ResourceExhausted, "grpc: received message larger than max (17825797 vs. 16778240)")

	var r recvState
	r.begin()
	go func() {
		time.Sleep(50 * time.Millisecond)
		r.end(tooLarge)
	}()
	if err := r.cause(10*time.Second, gone); ErrorReason(err) != "too_large" {
		t.Errorf("a Recv in progress that fails after the context ended: cause %v (reason %s), want too_large", err, ErrorReason(err))
	}

	var eof recvState
	eof.begin()
	eof.end(io.EOF)
	if err := eof.cause(time.Second, gone); err != gone {
		t.Errorf("after END_STREAM: cause %v, want gone", err)
	}

	var none recvState
	if err := none.cause(time.Second, gone); err != gone {
		t.Errorf("no Recv at all: cause %v, want gone", err)
	}

	// A Recv that never returns is waited for at most wait.
	var stuck recvState
	stuck.begin()
	start := time.Now()
	if err := stuck.cause(100*time.Millisecond, gone); err != gone || time.Since(start) > 5*time.Second {
		t.Errorf("a Recv stuck: cause %v after %v, want gone after the wait", err, time.Since(start))
	}

	// The first failure is kept.
	var twice recvState
	twice.begin()
	twice.end(tooLarge)
	twice.begin()
	twice.end(status.Error(codes.Canceled, "context canceled"))
	if err := twice.cause(time.Second, gone); ErrorReason(err) != "too_large" {
		t.Errorf("two failed Recvs: cause %v, want the first's, too_large", err)
	}
}
