package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/netlab"
)

// observeNet is the observed lab on hosts of their own (lab-observe
// -hosts): docker-compose's four services as four hosts, the client
// across a long link from the relay (the internet between a user and the
// edge), the rest a data centre's short links.
var observeNet = wanSpec{hosts: []string{"client", "relay", "haproxy", "server"}, links: []netlab.Link{
	{A: "client", B: "relay", Rate: 1_000_000_000, RTT: 20 * time.Millisecond},
	{A: "relay", B: "haproxy", Rate: 10_000_000_000, RTT: 500 * time.Microsecond},
	{A: "haproxy", B: "server", Rate: 10_000_000_000, RTT: 500 * time.Microsecond}}}

// onMachine says the program runs in the machine's own namespace even
// when the run has hosts: Prometheus, which the user's browser reaches on
// loopback and which scrapes the hosts through the lab's forwarders.
func onMachine(name string) bool { return name == "prometheus" }

// CheckObserveLinks reports a -link setting the observed lab on hosts
// cannot take (a link it does not have, a bad value), making nothing.
func CheckObserveLinks(links []string) error {
	_, err := netSpec(&observeNet, Options{Links: links})
	return err
}

// startObserveNet builds the observed lab's hosts, with the options'
// -link changes.
func (ob *Observatory) startObserveNet(ctx context.Context, o ObserveOptions) error {
	spec, err := netSpec(&observeNet, Options{Links: o.Links, LineBin: o.LineBin})
	if err != nil {
		return err
	}
	n, err := netlab.Create(ctx, spec)
	if err != nil {
		return fmt.Errorf("hosts: %w", err)
	}
	ob.run.net, ob.Hosts = n, n.Hosts
	for _, l := range n.Links {
		ob.run.progress("link %s", l)
	}
	for _, h := range n.Hosts {
		ob.run.progress("host %s: namespace %s (ip netns exec %s ss -tin)", h.Name, h.Namespace, h.Namespace)
	}
	return nil
}

// forwarder is the scrape path from the machine's own namespace into a
// host: a loopback listener whose connections the lab joins to the target
// address dialed from inside the host's namespace. It carries Prometheus's
// scrapes only, like a management network beside the shaped links; the
// path's own traffic never passes it.
type forwarder struct {
	ln   net.Listener
	addr string // the target, on its host
}

// forward starts a forwarder to addr and returns it; its Addr is where
// Prometheus scrapes.
func forward(addr string) (*forwarder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &forwarder{ln: ln, addr: addr}
	go f.serve()
	return f, nil
}

func (f *forwarder) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			up, err := netlab.DialContext(ctx, "tcp", f.addr)
			cancel()
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{})
			go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); close(done) }()
			io.Copy(c, up)
			c.Close()
			<-done
		}()
	}
}

// Addr is the forwarder's loopback address.
func (f *forwarder) Addr() string { return f.ln.Addr().String() }

// Close stops accepting; open scrapes end when either side closes (the
// lab stops Prometheus first).
func (f *forwarder) Close() {
	f.ln.Close()
}
