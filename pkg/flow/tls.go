package flow

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// TLS: a tls:// target is the TCP protocol inside TLS, a wss:// target the
// WebSocket one. The socket underneath stays reachable through NetConn
// (*tls.Conn has one), so kernel statistics and socket options still see
// the TCP connection.

// clientTLS runs the TLS handshake on a freshly dialled connection. The
// server name defaults to addr's host. It closes nc when the handshake
// fails.
func clientTLS(ctx context.Context, nc net.Conn, addr string, cfg *tls.Config) (net.Conn, error) {
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// serverTLS completes the handshake of a connection accepted by a TLS
// listener within timeout (0: no bound), so a peer that never finishes it
// is told apart from a hello-less one. Other connections pass unchanged.
func serverTLS(nc net.Conn, timeout time.Duration) error {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return nil
	}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		if refusePlainHello(err) {
			return fmt.Errorf("tls handshake: a plain-text hello (tcp://, not tls://): %w", err)
		}
		return fmt.Errorf("tls handshake: %w", err)
	}
	return nil
}

// tcpSocket is the *net.TCPConn under c, through any TLS layer; nil if
// there is none.
func tcpSocket(c net.Conn) *net.TCPConn {
	for range 4 {
		switch v := c.(type) {
		case *net.TCPConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}
