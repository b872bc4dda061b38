//go:build !linux

package lab

import "syscall"

// sysProcAttr puts each process in its own process group, so a terminal's
// Ctrl-C reaches only the lab, which then stops each process in order.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
