package main

// bpPanels are the panels of any hop running a bp binary: what it wrote
// and read, how long its writes blocked, and the kernel's view of its
// sockets. A writer's panels stay flat on a reader hop and the other way
// round (see the package comment).
func bpPanels() []panel {
	q := func(f string) string { return `sum(rate(` + f + `{` + bp + `}` + ri + `))` }
	hq := func(p string) string {
		return `histogram_quantile(` + p + `, sum by (le) (rate(bp_write_blocked_seconds_bucket{` + bp + `}` + ri + `)))`
	}
	return []panel{
		{title: "$bp_hop: bytes/s written, acknowledged, read", unit: "Bps",
			desc:    "Payload bytes per second this hop's write calls accepted, its peer acknowledged, and its read calls returned. Healthy: written and acknowledged together. Backpressure: acknowledged drops to 0 first, written follows once the path is full.",
			targets: []target{{q("bp_bytes_written_total"), "written"}, {q("bp_bytes_acked_total"), "acknowledged"}, {q("bp_bytes_read_total"), "read"}}},
		{title: "$bp_hop: share of time writes were blocked", unit: "percentunit",
			desc:    "Time write calls spent blocked, per open connection. Healthy: near 0. Backpressure: near 1 (100%) while the reader downstream is stopped.",
			targets: []target{{q("bp_writes_blocked_seconds_total") + ` / clamp_min(sum(bp_connections{` + bp + `}), 1)`, "blocked"}}},
		{title: "$bp_hop: write-blocked time, p50 and p99", unit: "s",
			desc:    "p50 and p99 of the time each write call was blocked. Healthy: microseconds. Backpressure: p99 reaches the length of the server's pause.",
			targets: []target{{hq("0.5"), "p50"}, {hq("0.99"), "p99"}}},
		{title: "$bp_hop: bytes in the pipe and kernel queues", unit: "bytes",
			desc: "Written but not yet acknowledged, the kernel's send and receive queues of this hop's sockets. Healthy: small. Backpressure: the send queue fills on a writer, the receive queue on a stopped reader.",
			targets: []target{
				{`sum(bp_bytes_in_pipe{` + bp + `})`, "in the pipe"},
				{`sum(bp_socket_send_queue_bytes{` + bp + `})`, "send queue"},
				{`sum(bp_socket_recv_queue_bytes{` + bp + `})`, "receive queue"},
			}},
		{title: "$bp_hop: time windows were zero", unit: "percentunit",
			desc:    "Share of time the peer's receive window was zero (this hop may not send) and this hop advertised a zero window (it told its peer to stop). Healthy: 0. Backpressure: the reader's own window and its writer's peer window go to zero together.",
			targets: []target{{q("bp_socket_peer_window_zero_seconds_total"), "peer window zero"}, {q("bp_socket_own_window_zero_seconds_total"), "own window zero"}}},
		{title: "$bp_hop: open connections and paused readers", unit: "short",
			desc:    "Open connections by protocol and readers the pause schedule stops now. Healthy: the connections asked for, steady. Backpressure: paused readers above 0 on the server while it pauses.",
			targets: []target{{`sum by (protocol) (bp_connections{` + bp + `})`, "{{protocol}}"}, {`sum(bp_reads_paused{` + bp + `})`, "paused now"}}},
	}
}

// relayPanels are bp-relay's own buffer, for hops that export it.
func relayPanels() []panel {
	return []panel{
		{title: "$relay_hop: buffer fill", unit: "percentunit",
			desc:    "Bytes the relay holds over what its buffers may hold, per direction. Healthy: near 0. Backpressure: 1 (100%) once the server stopped and the relay's buffer is full: then it stops reading.",
			targets: []target{{`sum by (direction) (bp_relay_buffered_bytes{` + relay + `}) / clamp_min(sum by (direction) (bp_relay_buffer_capacity_bytes{` + relay + `}), 1)`, "{{direction}}"}}},
		{title: "$relay_hop: readers paused because the buffer is full", unit: "short",
			desc: "Relay readers stopped now because their buffer is full, and the time they spent stopped per second. Healthy: 0. Backpressure: above 0 while the server is stopped: the relay passes the stop on.",
			targets: []target{
				{`sum by (direction) (bp_relay_reading_paused{` + relay + `})`, "{{direction}} paused now"},
				{`sum by (direction) (rate(bp_relay_read_paused_seconds_total{` + relay + `}` + ri + `))`, "{{direction}} paused s/s"},
			}},
		{title: "$relay_hop: buffer held", unit: "bytes",
			desc:    "Bytes in the relay's buffers per direction. Healthy: small. Backpressure: up to the buffer size per connection (--buffer).",
			targets: []target{{`sum by (direction) (bp_relay_buffered_bytes{` + relay + `})`, "{{direction}}"}}},
	}
}

// haproxyPanels read HAProxy's own exporter: no proxy is named, each
// frontend and backend is a series.
func haproxyPanels() []panel {
	r := func(f string) string { return `sum by (proxy) (rate(` + f + `{` + lb + `}` + ri + `))` }
	return []panel{
		{title: "$lb_hop: bytes/s in and forwarded", unit: "Bps",
			desc:    "Bytes per second each frontend took in and each backend forwarded. Healthy: in and forwarded equal. Backpressure: forwarded drops first, in follows once HAProxy's buffers and sockets are full.",
			targets: []target{{r("haproxy_frontend_bytes_in_total"), "frontend {{proxy}} in"}, {r("haproxy_backend_bytes_in_total"), "backend {{proxy}} forwarded"}}},
		{title: "$lb_hop: current sessions", unit: "short",
			desc:    "Sessions open now per frontend and backend. Healthy: the client's connections, steady. Backpressure: unchanged; a drop means HAProxy ended sessions (timeouts).",
			targets: []target{{`sum by (proxy) (haproxy_frontend_current_sessions{` + lb + `})`, "frontend {{proxy}}"}, {`sum by (proxy) (haproxy_backend_current_sessions{` + lb + `})`, "backend {{proxy}}"}}},
		{title: "$lb_hop: connections and aborts per second", unit: "short",
			desc:    "New connections and aborts per second. Healthy: new connections only at the start, no aborts. Backpressure: aborts when a timeout is shorter than the server's pause.",
			targets: []target{{r("haproxy_frontend_connections_total"), "{{proxy}} new/s"}, {r("haproxy_backend_client_aborts_total"), "{{proxy}} client aborts/s"}, {r("haproxy_backend_server_aborts_total"), "{{proxy}} server aborts/s"}}},
	}
}

// sidecarPanels are a bp-sockets sidecar's view of the hop's sockets, by
// side: downstream towards the client, upstream towards the server.
func sidecarPanels() []panel {
	return []panel{
		{title: "$sidecar_hop: kernel queues by side", unit: "bytes",
			desc: "What waits in the hop's sockets: receive queues (read by the hop next) and send queues (not yet taken by the next hop). Healthy: small. Backpressure: the upstream send queue fills, then the downstream receive queue.",
			targets: []target{
				{`sum by (side) (bp_socket_recv_queue_bytes{` + sidecar + `})`, "{{side}} receive queue"},
				{`sum by (side) (bp_socket_send_queue_bytes{` + sidecar + `})`, "{{side}} send queue"},
			}},
		{title: "$sidecar_hop: windows by side", unit: "bytes",
			desc: "Smallest window the hop's peers advertise (upstream: the server's) and the hop advertises (downstream: to the client). Healthy: large. Backpressure: upstream peer window 0, then the hop's own downstream window 0: the hop told the client to stop.",
			targets: []target{
				{`min by (side) (bp_socket_peer_window_min_bytes{` + sidecar + `})`, "{{side}} peer window (min)"},
				{`min by (side) (bp_socket_own_window_min_bytes{` + sidecar + `})`, "{{side}} own window (min)"},
			}},
		{title: "$sidecar_hop: sockets sampled", unit: "short",
			desc:    "Connections the sidecar read in its last pass, by side. Healthy: the hop's connections. 0 means the sidecar sees no socket of the hop (wrong network namespace or ports).",
			targets: []target{{`sum by (side) (bp_socket_sampled_connections{` + sidecar + `})`, "{{side}}"}}},
	}
}
