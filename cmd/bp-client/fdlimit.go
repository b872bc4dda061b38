package main

import (
	"fmt"

	"github.com/go-backpressure/go-backpressure/internal/fdlimit"
	"github.com/go-backpressure/go-backpressure/pkg/config"
)

// clientFDMargin is the file descriptors bp-client holds besides its
// connections' sockets: the metrics listener and its scrapes, the socket
// sampler's netlink socket, the runtime's epoll and pipes, stdio.
const clientFDMargin = 32

// checkFDs refuses a run whose connections cannot all be open at once.
// Each connection holds a socket (HTTP/2 and gRPC streams share their
// connection's); past the open-file limit, raised to its hard limit first
// as the servers do, the dials would fail one by one with "too many open
// files" after the run had started, and the report would blame the path.
// An unknown limit is not checked.
func checkFDs(cfg clientConfig) error {
	soft, hard, err := fdlimit.Raise()
	if err != nil {
		return nil
	}
	need := cfg.Connections + clientFDMargin
	if uint64(need) <= soft {
		return nil
	}
	return config.Invalid("connections", cfg.Connections, fmt.Sprintf(
		"needs about %d file descriptors (one per connection and %d more), over the open-file limit of %d (ulimit -n; hard limit %d): lower --connections or raise the limit, on the server too",
		need, clientFDMargin, soft, hard))
}
