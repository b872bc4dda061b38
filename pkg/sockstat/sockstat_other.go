//go:build !linux

package sockstat

// Supported reports whether this system can read socket statistics. It is
// false here: only Linux is supported.
func Supported() bool { return false }

// KernelFields returns the Sample fields the running kernel provides: none
// on this system.
func KernelFields() Fields { return 0 }

// Reader reads the statistics of one TCP socket. On this system it never
// exists: NewReader returns ErrUnsupported.
type Reader struct{}

// NewReader returns ErrUnsupported on this system, so callers can build
// their per-connection state the same way everywhere and skip sampling.
func NewReader(c any) (*Reader, error) { return nil, ErrUnsupported }

// Read returns ErrUnsupported and leaves s zeroed, with Has == 0.
func (r *Reader) Read(s *Sample) error {
	*s = Sample{}
	return ErrUnsupported
}

// ReadNetstat returns ErrUnsupported: /proc/net/netstat is Linux's.
func ReadNetstat() (ZeroWindowCounters, error) {
	return ZeroWindowCounters{}, ErrUnsupported
}

// Unread returns ErrUnsupported on this system.
func Unread(c any) (int, error) { return 0, ErrUnsupported }
