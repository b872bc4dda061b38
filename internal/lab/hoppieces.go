package lab

import (
	"context"
	"net"
	"path/filepath"
	"time"
)

// endpoints are the pages the poller scrapes for this hop: its own
// /metrics where it has one (bp-relay, HAProxy's exporter) and its
// bp-sockets sidecar.
func (h *hop) endpoints() []endpoint {
	var out []endpoint
	if h.livePage {
		out = append(out, endpoint{key: h.name, url: h.metricsURL})
	}
	if h.socketsURL != "" {
		out = append(out, endpoint{key: h.name + socketsSuffix, url: h.socketsURL})
	}
	return out
}

// pieces are the hop's three places in the byte map, from a snapshot: its
// downstream receive queue, its own buffer, its upstream send queue.
func (h *hop) pieces(s snapshot) []Piece {
	if h.name == "bp-relay" {
		// bp-relay's own socket metrics cover both of its connections; the
		// upstream one receives only acks and the downstream one sends only
		// acks, which a stopped server does not send.
		page := s.pages[h.name]
		recv, _ := page.sum("bp_socket_recv_queue_bytes", nil)
		buf, _ := page.sum("bp_relay_buffered_bytes", map[string]string{"direction": "up"})
		send, _ := page.sum("bp_socket_send_queue_bytes", nil)
		return []Piece{
			{Hop: h.name, Place: "downstream receive queue", Bytes: recv, Measured: true, Source: "bp_socket_recv_queue_bytes"},
			{Hop: h.name, Place: "buffer", Bytes: buf, Measured: true, Source: `bp_relay_buffered_bytes{direction="up"}`},
			{Hop: h.name, Place: "upstream send queue", Bytes: send, Measured: true, Source: "bp_socket_send_queue_bytes"},
		}
	}
	socks := s.pages[h.name+socketsSuffix]
	down := map[string]string{"side": "downstream"}
	up := map[string]string{"side": "upstream"}
	recv, _ := socks.sum("bp_socket_recv_queue_bytes", down)
	send, _ := socks.sum("bp_socket_send_queue_bytes", up)
	return []Piece{
		{Hop: h.name, Place: "downstream receive queue", Bytes: recv, Measured: true, Source: `bp-sockets bp_socket_recv_queue_bytes{side="downstream"}`},
		h.bufferPiece(s),
		{Hop: h.name, Place: "upstream send queue", Bytes: send, Measured: true, Source: `bp-sockets bp_socket_send_queue_bytes{side="upstream"}`},
	}
}

// bufferPiece is a third-party hop's own buffer: for HAProxy, bytes in
// from the client minus bytes out to the server, from its exporter's
// counters, which it updates while a connection is open; nginx and Caddy
// count a connection's bytes only when it ends, so theirs is unmeasured,
// with the most their configuration lets them hold.
func (h *hop) bufferPiece(s snapshot) Piece {
	if h.name == "haproxy" {
		page := s.pages[h.name]
		in, _ := page.sum("haproxy_frontend_bytes_in_total", map[string]string{"proxy": "bp_in"})
		out, _ := page.sum("haproxy_backend_bytes_in_total", map[string]string{"proxy": h.haproxyBackend()})
		return Piece{Hop: h.name, Place: "buffer", Bytes: in - out, Measured: true,
			Source: "haproxy_frontend_bytes_in_total - haproxy_backend_bytes_in_total"}
	}
	return Piece{Hop: h.name, Place: "buffer", Measured: false, MaxBytes: h.bufferMax, Source: h.bufferNote}
}

// startSockets runs bp-sockets beside a third-party hop: its downstream
// side is the hop's listening port, its upstream side the server's port,
// so the client's and the server's own sockets (the same ports the other
// way round) are not counted.
func (r *run) startSockets(ctx context.Context, h *hop, listen, upstream string) error {
	_, down, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	_, up, err := net.SplitHostPort(upstream)
	if err != nil {
		return err
	}
	addr, err := r.listenAddr(h.name)
	if err != nil {
		return err
	}
	p, err := r.start(h.name+"-sockets", filepath.Join(r.opts.Bin, "bp-sockets"), []string{
		"--downstream-ports", down, "--upstream-ports", up, "--metrics-addr", addr,
		"--sample-interval", "100ms", "--log-format", "json",
	}, nil, nil)
	if err != nil {
		return err
	}
	h.socketsURL = "http://" + addr + "/metrics"
	return waitHTTP(ctx, p, "http://"+addr+"/healthz", 10*time.Second)
}

// peakBuffered is the most bp_relay_buffered_bytes{direction="up"} any
// snapshot saw: the relay's peak fill, which the end-of-run scrape, taken
// after everything drained, cannot show.
func peakBuffered(snaps []snapshot, key string) (float64, bool) {
	most, found := 0.0, false
	for _, s := range snaps {
		if v, ok := s.pages[key].sum("bp_relay_buffered_bytes", map[string]string{"direction": "up"}); ok {
			most, found = max(most, v), true
		}
	}
	return most, found
}
