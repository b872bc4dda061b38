//go:build linux

package flow

import (
	"context"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNotSentLowat dials a real loopback listener with NotSentLowat and
// reads the option back from the kernel: the relay's
// --upstream-notsent-lowat reaches the socket, and 0 leaves the socket's own
// value unset (the kernel's sysctl applies).
func TestNotSentLowat(t *testing.T) {
	ln := holdingListener(t)
	for _, want := range []int{32 << 10, 0} {
		d := net.Dialer{Control: SocketOptions{NotSentLowat: want}.control}
		c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got int
		var gerr error
		if err := rc.Control(func(fd uintptr) {
			got, gerr = unix.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT)
		}); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		c.Close()
		// Unset, the socket's own value is 0: the sysctl applies.
		if got != want {
			t.Errorf("NotSentLowat %d: TCP_NOTSENT_LOWAT = %d, want %d", want, got, want)
		}
	}
}
