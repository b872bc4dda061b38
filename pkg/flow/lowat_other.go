//go:build !linux

package flow

import "errors"

func setNotSentLowat(fd uintptr, n int) error {
	return errors.New("TCP_NOTSENT_LOWAT is set on Linux only")
}
