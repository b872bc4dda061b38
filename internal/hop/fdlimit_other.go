//go:build !unix

package hop

import "errors"

func raiseNOFILE() (soft, hard uint64, err error) {
	return 0, 0, errors.New("no RLIMIT_NOFILE on this system")
}
