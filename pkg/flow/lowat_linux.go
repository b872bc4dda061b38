//go:build linux

package flow

import "golang.org/x/sys/unix"

// setNotSentLowat sets TCP_NOTSENT_LOWAT.
func setNotSentLowat(fd uintptr, n int) error {
	return unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, n)
}
