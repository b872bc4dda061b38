//go:build unix

package fdlimit

import "syscall"

// Raise raises the soft RLIMIT_NOFILE to the hard one and returns
// both as they then are.
func Raise() (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = raised.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			lim = raised
		} // macOS refuses above kern.maxfilesperproc: keep the soft one
	}
	return uint64(lim.Cur), uint64(lim.Max), nil
}
