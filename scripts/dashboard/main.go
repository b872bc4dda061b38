// Command dashboard writes the Grafana dashboard of go-backpressure,
// deploy/grafana/dashboards/go-backpressure.json, from Go code with Grafana's
// foundation SDK, so the dashboard's schema is checked by the compiler and a
// row per hop is one definition repeated, not copied JSON.
//
//	go generate ./scripts/dashboard     # or: go run ./scripts/dashboard -o FILE
//
// The committed JSON is this command's output; TestGenerated fails when they
// differ. See docs/DEPLOY.md for the variables and rows.
//
// # Why rows by kind of hop
//
// A path is whatever the user has: client and server only (Cloud Foundry),
// one or two load balancers, relays, sidecars. Every query filters on the
// `hop` target label and none names a hop. Panels that every bp binary
// moves (bytes, blocked writes, kernel queues and windows) sit in one row
// repeated per selected hop that runs a bp binary; what only some hops
// export gets rows of its own, repeated over a hidden variable that lists
// the selected hops exporting that family: the relay's buffer
// (bp_relay_buffer_size_bytes), HAProxy's exporter (haproxy_*), a bp-sockets
// sidecar (bp_socket_* with a side label). So a hop without relay metrics
// shows no relay row at all rather than empty panels. The one price: in the
// bp row a writer's panels for a reader hop (or the reverse) show zero or
// "No data"; splitting it further by role would need a metric that names
// the role, which the binaries do not export.
package main

//go:generate go run . -o ../../deploy/grafana/dashboards/go-backpressure.json

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	out := flag.String("o", "deploy/grafana/dashboards/go-backpressure.json", "file to write")
	flag.Parse()
	b, err := Generate()
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}
