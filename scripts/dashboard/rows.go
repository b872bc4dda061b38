package main

// rows are the dashboard from top to bottom: the whole path, the fleet,
// then one row per hop of each kind (see the package comment).
func rows() []row {
	return []row{
		{title: "The whole path: every selected hop", panels: pathPanels()},
		{title: "Fleet: many bp-clients, one verdict each", panels: fleetPanels()},
		{title: "Stream layer (HTTP/2, gRPC): where the streams' writes waited, hop by hop", panels: streamPanels()},
		{title: "Hop $bp_hop (bp binary)", repeat: varBP, panels: bpPanels()},
		{title: "Relay $relay_hop: its own buffer", repeat: varRelay, panels: relayPanels()},
		{title: "Load balancer $lb_hop (HAProxy's exporter)", repeat: varLB, panels: haproxyPanels()},
		{title: "Sidecar $sidecar_hop (bp-sockets: the hop's sockets)", repeat: varSidecar, panels: sidecarPanels()},
	}
}

// Label filters. sel is every selected hop; bp the repeated hop of its row,
// with the protocols selected (a protocol=~".*" also matches series without
// the label, so All keeps HAProxy's and bp-sockets' series).
const (
	sel     = `hop=~"$hop"`
	bp      = `hop="$bp_hop",protocol=~"$protocol"`
	relay   = `hop="$relay_hop"`
	lb      = `hop="$lb_hop"`
	sidecar = `hop="$sidecar_hop",side=~".+"`
	ri      = `[$__rate_interval]`
)

// pathPanels work for any number of hops: each series is a hop.
func pathPanels() []panel {
	return []panel{
		{title: "Bytes/s entering each hop", unit: "Bps",
			desc: "Payload bytes per second each hop takes in: what a bp binary reads, or writes where it reads nothing (the writer the bytes start at), what HAProxy's frontends take in. Healthy: every hop at the same rate. Backpressure: the hops nearest the server drop first, those nearer the client follow once the buffers between are full.",
			targets: []target{
				{`sum by (hop) (rate(bp_bytes_read_total{` + sel + `}` + ri + `))`, "{{hop}} (read)"},
				{`sum by (hop) (rate(bp_bytes_written_total{` + sel + `}` + ri + `)) unless on (hop) (sum by (hop) (rate(bp_bytes_read_total{` + sel + `}` + ri + `)) > 0)`, "{{hop}} (written: its origin)"},
				{`sum by (hop) (rate(haproxy_frontend_bytes_in_total{` + sel + `}` + ri + `))`, "{{hop}} (in)"},
			}},
		{title: "Writes blocked, per hop", unit: "percentunit",
			desc: "Share of time each hop's write calls were blocked, per connection. Healthy: near 0. Backpressure: the writer nearest the stopped reader rises first, then each hop towards the client.",
			targets: []target{
				{`sum by (hop) (rate(bp_writes_blocked_seconds_total{` + sel + `}` + ri + `)) / clamp_min(sum by (hop) (bp_connections{` + sel + `}), 1)`, "{{hop}}"},
			}},
		{title: "Where the bytes are", unit: "bytes",
			desc: "Bytes held along the path: written but not acknowledged (the client's view of the whole pipe), the kernel queues of every hop, the relay buffers. Healthy: small and flat. Backpressure: the queues fill from the server back towards the client.",
			targets: []target{
				{`sum by (hop) (bp_bytes_in_pipe{` + sel + `})`, "{{hop}}: in the pipe (its view)"},
				{`sum by (hop) (bp_socket_send_queue_bytes{` + sel + `})`, "{{hop}}: send queues"},
				{`sum by (hop) (bp_socket_recv_queue_bytes{` + sel + `})`, "{{hop}}: receive queues"},
				{`sum by (hop) (bp_relay_buffered_bytes{` + sel + `})`, "{{hop}}: relay buffer"},
			}},
		{title: "Where the bytes are, place by place (stacked)", unit: "bytes", width: 24, stacked: true,
			desc: "The same bytes stacked per hop and place, so the top line is all the path holds. Healthy: a thin band. Backpressure: the band grows up to what the path can absorb; the place that grows most is where the bytes wait.",
			targets: []target{
				{`sum by (hop) (bp_socket_send_queue_bytes{` + sel + `,side!="downstream"})`, "{{hop}}: send queue"},
				{`sum by (hop) (bp_socket_recv_queue_bytes{` + sel + `,side!="upstream"})`, "{{hop}}: receive queue"},
				{`sum by (hop, direction) (bp_relay_buffered_bytes{` + sel + `})`, "{{hop}}: own buffer ({{direction}})"},
			}},
	}
}

// fleetPanels read the verdict each bp-client of a fleet exports.
func fleetPanels() []panel {
	return []panel{
		{title: "Fleet: instances running and blocked", unit: "short",
			desc: "bp-clients of each fleet that report, the size the fleet was started with, and how many say their writes were blocked by a stopped server. Healthy (for a backpressure test): blocked equals running once the server stops.",
			targets: []target{
				{`count by (fleet) (bp_fleet_info)`, "{{fleet}}: running"},
				{`max(bp_fleet_instances)`, "instances asked"},
				{`sum(bp_verdict_outcome{outcome="blocked"})`, "blocked"},
				{`sum(bp_verdict_outcome{outcome="absorbed"})`, "absorbed (never blocked)"},
			}},
		{title: "Fleet: bytes the path absorbed", unit: "bytes",
			desc: "What the path took after the server stopped, summed over the fleet and for the instances that saw most. Healthy: the same small figure for each instance; one instance far above the others sits behind a bigger buffer.",
			targets: []target{
				{`sum(bp_verdict_absorbed_bytes)`, "all instances"},
				{`topk(5, bp_verdict_absorbed_bytes)`, "{{instance}}"},
			}},
		{title: "Fleet: block delay spread", unit: "s",
			desc: "How long after the server stopped each instance's writes blocked: fastest, median, slowest. Healthy: all close together; a wide spread means some paths buffer much more than others.",
			targets: []target{
				{`min(bp_verdict_block_delay_seconds)`, "fastest"},
				{`quantile(0.5, bp_verdict_block_delay_seconds)`, "median"},
				{`max(bp_verdict_block_delay_seconds)`, "slowest"},
				{`max(bp_verdict_server_stopped_at_seconds)`, "server stopped at (s into the run)"},
			}},
	}
}
