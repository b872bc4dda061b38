//go:build linux

package sockstat

import (
	"fmt"
	"os"
)

// netstatPath is the file ReadNetstat reads; tests point it at a fixture.
var netstatPath = "/proc/net/netstat"

// ReadNetstat reads the host-wide zero-window counters of the current
// network namespace from /proc/net/netstat.
func ReadNetstat() (ZeroWindowCounters, error) {
	f, err := os.Open(netstatPath)
	if err != nil {
		return ZeroWindowCounters{}, fmt.Errorf("read netstat: %w", err)
	}
	defer f.Close()
	return ParseNetstat(f)
}
