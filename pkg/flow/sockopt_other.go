//go:build !unix

package flow

import "errors"

func setBuffers(fd uintptr, snd, rcv int) error {
	return errors.New("socket buffer sizes are supported on unix only")
}
