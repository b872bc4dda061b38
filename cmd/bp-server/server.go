package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/go-backpressure/go-backpressure/internal/hop"
	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
	"github.com/go-backpressure/go-backpressure/web"
)

// server holds what the listeners share.
type server struct {
	cfg     serverConfig
	conns   hop.ConnLogger
	obs     flow.Observer
	payload *flow.PayloadPool // download payloads, within --payload-memory
	windows windowLogs        // logs each connection's advertised window closing and reopening
}

// run serves until ctx ends, then stops accepting, closes every connection
// (hijacked WebSocket ones included) and returns. ready, if set, gets the
// bound addresses once listening.
func run(ctx context.Context, cfg serverConfig, log *slog.Logger, ready func(httpAddr, tcpAddr string)) error {
	s := &server{cfg: cfg, conns: hop.NewConnLogger(log, false), payload: flow.NewPayloadPool(int64(cfg.PayloadMemory))}
	if missing := sockstat.MissingDescription(); missing != "" {
		log.Info("kernel socket statistics incomplete: their metrics are left out", "missing", missing)
	}
	st, err := hop.Start(ctx, hop.Options{Name: "bp-server", Log: log, Limits: cfg.Limits, TLS: cfg.TLSServe,
		HTTPAddr: cfg.HTTPAddr, TCPAddr: cfg.TCPAddr, GRPCAddr: cfg.GRPCAddr, Socket: cfg.socketOptions(),
		StallThreshold: cfg.StallThreshold, HelloTimeout: cfg.HelloTimeout, SampleInterval: cfg.SampleInterval,
		OnWindow: s.windows.event, HTTP2: true, Procs: cfg.procs})
	if err != nil {
		return err
	}
	defer st.Close()
	s.obs = st.Observer()

	mux := st.Mux(true)
	mux.Handle("/client", web.Handler())
	mux.Handle("/client/", web.Handler())
	mux.HandleFunc("/ws", st.Hop.WebSocket(ctx, s.serve))
	mux.HandleFunc(hop.HTTP2Path, st.Hop.HTTP2(ctx, s.serve)) // HTTP/2 only: h2c, or h2 over TLS
	mux.HandleFunc(hop.AckStreamPath, st.Hop.AckStream(ctx))  // a browser upload's acks (HTTP/2)
	servers := []hop.Served{st.Served(ctx, mux, st.HTTPLn)}

	httpAddr := st.HTTPLn.Addr().String()
	log.Info("bp-server listening", "http", httpAddr, "tcp", st.TCPAddr(), "grpc", st.GRPCAddr(),
		"version", config.Version, "read_size", cfg.ReadSize, "read_delay", cfg.ReadDelay,
		"read_rate", cfg.ReadRate, "pause_after", cfg.PauseAfter, "pause_for", cfg.PauseFor,
		"pause_every", cfg.PauseEvery, "rcvbuf", cfg.RcvBuf, "sample_interval", cfg.SampleInterval,
		"max_connections", st.Limits().MaxConnections, "max_http_connections", cfg.MaxHTTPConnections, "idle_timeout", cfg.IdleTimeout, "allowed_origins", st.Hop.Guard.Origins().String(), "tls", st.TLS != nil)
	if ready != nil {
		ready(httpAddr, st.TCPAddr())
	}
	return st.Serve(ctx, servers, s.serve)
}

// serve runs one connection's session and logs its progress at a
// bounded rate.
func (s *server) serve(ctx context.Context, hello *flow.Hello, c flow.Conn, peer string) {
	plan := s.plan(hello)
	sess := flow.NewSession(c, plan, s.obs)
	if hello != nil && !hello.Legacy {
		// The first ack tells the client which bp-relays its stream
		// passed and where this server sees the connection from, so its
		// report can name the kernel that pushed back, even a proxy's
		// that does not name itself. peer goes back only to that client.
		sess.EchoPath(hello.Via, seenFrom(peer))
	}
	log := s.conns.With(peer, c, hello)
	logsWindow := s.windows.add(c.NetConn(), log.Lines())
	log.Opened("announced_bytes", announced(hello))

	stopLog := make(chan struct{})
	var logDone sync.WaitGroup
	if s.cfg.LogInterval > 0 {
		logDone.Add(1)
		go func() {
			defer logDone.Done()
			s.logProgress(log.Lines(), sess, hello, stopLog)
		}()
	}
	snap, err := sess.Run(ctx)
	close(stopLog)
	logDone.Wait()
	windowCloses := 0
	if logsWindow {
		windowCloses = s.windows.remove(c.NetConn())
	}
	elapsed := time.Since(snap.Start)
	log.Closed(err, "read_bytes", snap.Read, "written_bytes", snap.Written, "acked_bytes", snap.Acked,
		"receive_window_closes", windowCloses,
		"duration", elapsed.Round(time.Millisecond).String(),
		"read_rate", config.HumanBytes(float64(snap.Read)/elapsed.Seconds())+"/s")
}

// seenFrom is the connection's remote address as the first ack echoes
// it: only an ip:port (gRPC's "unknown" peer is not echoed).
func seenFrom(peer string) string {
	if _, err := netip.ParseAddrPort(peer); err != nil {
		return ""
	}
	return peer
}

func announced(h *flow.Hello) int64 {
	if h == nil {
		return 0
	}
	return h.TotalBytes
}

// logProgress logs every LogInterval: progress against the announced total,
// the read rate over the interval, and whether reading is paused.
func (s *server) logProgress(log *slog.Logger, sess *flow.Session, hello *flow.Hello, stop <-chan struct{}) {
	t := time.NewTicker(s.cfg.LogInterval)
	defer t.Stop()
	var last flow.Snapshot
	lastAt := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			snap := sess.Snapshot()
			dt := now.Sub(lastAt).Seconds()
			fields := []any{"read_bytes", snap.Read,
				"read_rate", config.HumanBytes(float64(snap.Read-last.Read)/dt) + "/s",
				"paused", snap.Paused}
			if total := announced(hello); total > 0 {
				fields = append(fields, "progress", fmt.Sprintf("%.1f%%", 100*float64(snap.Read)/float64(total)))
			}
			if snap.Written > 0 {
				fields = append(fields, "written_bytes", snap.Written, "in_pipe_bytes", snap.InPipe(),
					"write_rate", config.HumanBytes(float64(snap.Written-last.Written)/dt)+"/s")
			}
			log.Info("connection progress", fields...)
			last, lastAt = snap, now
		}
	}
}

// plan turns a client's hello into what this side does: read what the
// client writes, write what the client asked to read.
func (s *server) plan(h *flow.Hello) flow.Plan {
	p := flow.Plan{
		Read:        s.cfg.Reading.Settings(),
		PeerWrites:  h == nil || h.Direction.ClientWrites(),
		AckInterval: s.cfg.AckInterval,
		IdleTimeout: s.cfg.IdleTimeout,
	}
	if h != nil && h.FullSpeed {
		p.Read = p.Read.FullSpeed() // one of the fast streams beside --slow-streams
	}
	if h != nil && h.Direction.ServerWrites() {
		size := h.PayloadSize
		if size <= 0 {
			size = flow.DefaultReadSize
		}
		p.Write = &flow.WritePlan{
			Payloads:       s.payload,
			PayloadSize:    size,
			Rate:           h.Rate,
			TotalBytes:     h.TotalBytes,
			Duration:       h.Duration(),
			StallThreshold: s.cfg.StallThreshold,
		}
	}
	return p
}
