package netlab

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Netstat reads the host's own TCP/IP counters: /proc/net/netstat and
// /proc/net/snmp as its namespace's kernel keeps them, named as nstat
// names them (TcpExtTCPToZeroWindowAdv, TcpOutSegs, IpExtInOctets). The
// files are read on a thread that has entered the namespace, through
// /proc/thread-self: /proc/self/net is the process's first thread's
// namespace, not the reading thread's.
func (n *Net) Netstat(host string) (map[string]int64, error) {
	out := map[string]int64{}
	err := Do(n.NS(host), func() error {
		for _, f := range []string{"/proc/thread-self/net/netstat", "/proc/thread-self/net/snmp"} {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			if err := parseNetstat(string(b), out); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
		}
		return nil
	})
	return out, err
}

// parseNetstat adds the counters of a /proc/net/netstat or snmp file to
// out: pairs of lines, "Prefix: Name1 Name2 ..." then "Prefix: v1 v2 ...".
func parseNetstat(s string, out map[string]int64) error {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) != len(values) || len(names) == 0 || names[0] != values[0] {
			return fmt.Errorf("lines %d and %d do not pair", i+1, i+2)
		}
		prefix := strings.TrimSuffix(names[0], ":")
		for j := 1; j < len(names); j++ {
			v, err := strconv.ParseInt(values[j], 10, 64)
			if err != nil {
				return fmt.Errorf("%s%s: %w", prefix, names[j], err)
			}
			out[prefix+names[j]] = v
		}
	}
	return nil
}
