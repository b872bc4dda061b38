package lab

import "syscall"

// sysProcAttr puts each process in its own process group, so a terminal's
// Ctrl-C reaches only the lab, which then stops each process in order; and
// has the kernel send it SIGTERM if the lab dies first, so no hop outlives
// a killed lab.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
