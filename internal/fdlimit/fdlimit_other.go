//go:build !unix

package fdlimit

import "errors"

// Raise: no RLIMIT_NOFILE to read here.
func Raise() (soft, hard uint64, err error) {
	return 0, 0, errors.New("no RLIMIT_NOFILE on this system")
}
