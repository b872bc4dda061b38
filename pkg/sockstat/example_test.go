package sockstat_test

import (
	"fmt"
	"net"
	"strings"

	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

func ExampleParseNetstat() {
	// Two sections of /proc/net/netstat, trimmed; this kernel has no
	// TCPZeroWindowDrop counter.
	const netstat = `TcpExt: DelayedACKs TCPToZeroWindowAdv TCPFromZeroWindowAdv TCPWantZeroWindowAdv
TcpExt: 120 7 6 30
IpExt: InNoRoutes InOctets
IpExt: 0 123456
`
	c, err := sockstat.ParseNetstat(strings.NewReader(netstat))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("windows closed:", c.ToZeroWindowAdv, "reopened:", c.FromZeroWindowAdv)
	if c.Present&sockstat.HasZeroWindowDrop == 0 {
		fmt.Println("zero-window drops: not counted by this kernel")
	}
	// Output:
	// windows closed: 7 reopened: 6
	// zero-window drops: not counted by this kernel
}

// Sample one connection, as a scrape-time collector would: one Reader and
// one Sample per connection, reused for every reading.
func ExampleReader() {
	conn, err := net.Dial("tcp", "example.com:80")
	if err != nil {
		return
	}
	defer conn.Close()
	r, err := sockstat.NewReader(conn) // ErrUnsupported off Linux
	if err != nil {
		return
	}
	var s sockstat.Sample
	if err := r.Read(&s); err != nil {
		return
	}
	if s.Has&sockstat.FieldPeerWindow != 0 && s.PeerWindow == 0 {
		fmt.Println("the peer stopped reading; unsent bytes:", s.SendQueueNotSent)
	}
}
