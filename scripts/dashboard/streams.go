package main

// streamSel is every selected hop's streams, of the protocols selected.
const streamSel = `hop=~"$hop",protocol=~"$protocol"`

// streamPanels are the stream layer of HTTP/2 and gRPC, every selected
// hop side by side (a hop without streams has no bp_stream_* series, so
// it draws nothing): where the streams' writes waited (their window,
// their connection's, TCP), how low the windows went, and the
// WINDOW_UPDATEs that reopen them.
func streamPanels() []panel {
	perStream := ` / on (hop, protocol) group_left () clamp_min(sum by (hop, protocol) (bp_stream_sampled_streams{` + streamSel + `}), 1)`
	return []panel{
		{title: "Stream writes blocked: stream window, connection window, TCP", unit: "percentunit", width: 12,
			desc: "Share of time each hop's streams' writes waited, per open stream, by the layer that held them: the stream's own window, the connection's, or TCP (both windows open, the socket full), with the kernel's view of TCP's window beside it. Healthy: all near 0. Backpressure held at the stream layer (a hop that multiplexes): stream near 1 on the slow streams, tcp and the kernel's zero window near 0. Reaching the socket: tcp and the kernel's zero window rise too.",
			targets: []target{
				{`sum by (hop, protocol, layer) (rate(bp_stream_blocked_seconds_total{` + streamSel + `}` + ri + `))` + perStream, "{{hop}} {{protocol}}: {{layer}}"},
				{`sum by (hop, protocol) (rate(bp_socket_peer_window_zero_seconds_total{` + streamSel + `}` + ri + `)) / on (hop, protocol) clamp_min(sum by (hop, protocol) (bp_socket_sampled_connections{` + streamSel + `}), 1) and on (hop, protocol) (sum by (hop, protocol) (bp_stream_sampled_streams{` + streamSel + `}) > 0)`, "{{hop}} {{protocol}}: TCP peer window zero (kernel, per socket)"},
			}},
		{title: "Stream windows, the lowest", unit: "bytes", width: 12,
			desc: "The smallest send window the peer allows (a stream's, a connection's) and receive window this side advertises, over each hop's open streams. Healthy: near the windows' size (65535 bytes by default, more where the hop raises them). Backpressure: a send stream window at 0 is a stream that may send nothing; the connection's at 0 holds every stream of it.",
			targets: []target{
				{`min by (hop, protocol, layer) (bp_stream_send_window_min_bytes{` + streamSel + `})`, "{{hop}} {{protocol}}: send {{layer}}"},
				{`min by (hop, protocol, layer) (bp_stream_recv_window_min_bytes{` + streamSel + `})`, "{{hop}} {{protocol}}: receive {{layer}}"},
			}},
		{title: "WINDOW_UPDATEs per second, streams shut", unit: "short", width: 24,
			desc: "WINDOW_UPDATE frames per second received from the peer and sent to it, and the open streams whose send window is shut now against all open streams. Healthy: updates flowing, no stream shut. Backpressure: received updates stop while streams stay shut; one shut of many is a slow stream, all of them a hop that ties the streams together.",
			targets: []target{
				{`sum by (hop, protocol, direction) (rate(bp_stream_window_updates_total{` + streamSel + `}` + ri + `))`, "{{hop}} {{protocol}}: {{direction}}/s"},
				{`sum by (hop, protocol) (bp_stream_window_closed_streams{` + streamSel + `})`, "{{hop}} {{protocol}}: streams shut now"},
				{`sum by (hop, protocol) (bp_stream_sampled_streams{` + streamSel + `})`, "{{hop}} {{protocol}}: open streams"},
			}},
	}
}
