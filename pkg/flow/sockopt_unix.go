//go:build unix

package flow

import "syscall"

func setBuffers(fd uintptr, snd, rcv int) error {
	if snd > 0 {
		if err := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, snd); err != nil {
			return err
		}
	}
	if rcv > 0 {
		if err := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcv); err != nil {
			return err
		}
	}
	return nil
}
