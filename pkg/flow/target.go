package flow

import (
	"context"
	"fmt"
	"net/url"
)

// Target is where a client or a relay connects: a tcp://, tls://, ws://,
// wss://, grpc://, grpcs://, h2c:// or https:// URL, parsed once.
type Target struct {
	Protocol Protocol
	// Addr is what the transport dials: host:port for TCP and gRPC, the
	// whole URL for WebSocket and HTTP/2.
	Addr string
	// TLS is set for tls://, wss://, grpcs:// and https://: the dial needs
	// SocketOptions.TLS (wss:// falls back to the defaults without it).
	TLS bool
}

// TargetError is a target URL ParseTarget refused. Each binary words the
// message itself (it knows its flag), so the error says what was wrong.
type TargetError struct {
	// NotURL: the string is no URL at all.
	NotURL bool
	// Scheme is the URL's scheme; unknown unless Want is set.
	Scheme string
	// Want, for a known scheme, is the form the URL lacks
	// ("tcp://host:port", "ws://host:port/ws").
	Want string
}

func (e TargetError) Error() string {
	switch {
	case e.NotURL:
		return "not a URL"
	case e.Want != "":
		return "want " + e.Want
	}
	return fmt.Sprintf("unknown scheme %q", e.Scheme)
}

// ParseTarget parses a target URL: tcp://host:port, tls://host:port,
// ws://host[:port]/path, wss://host[:port]/path, grpc://host:port,
// grpcs://host:port, h2c://host:port[/path] or https://host[:port][/path].
// Its errors are TargetErrors.
func ParseTarget(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, TargetError{NotURL: true}
	}
	switch u.Scheme {
	case "tcp", "tls":
		if u.Host == "" || u.Port() == "" {
			return Target{}, TargetError{Scheme: u.Scheme, Want: u.Scheme + "://host:port"}
		}
		return Target{Protocol: TCP, Addr: u.Host, TLS: u.Scheme == "tls"}, nil
	case "ws", "wss":
		if u.Host == "" {
			return Target{}, TargetError{Scheme: u.Scheme, Want: "ws://host:port/ws"}
		}
		return Target{Protocol: WebSocket, Addr: u.String(), TLS: u.Scheme == "wss"}, nil
	case "grpc", "grpcs":
		if u.Host == "" || u.Port() == "" {
			return Target{}, TargetError{Scheme: u.Scheme, Want: u.Scheme + "://host:port"}
		}
		return Target{Protocol: GRPC, Addr: u.Host, TLS: u.Scheme == "grpcs"}, nil
	case "h2c", "https":
		if u.Host == "" || (u.Scheme == "h2c" && u.Port() == "") {
			return Target{}, TargetError{Scheme: u.Scheme, Want: u.Scheme + "://host:port/h2"}
		}
		return Target{Protocol: HTTP2, Addr: u.String(), TLS: u.Scheme == "https"}, nil
	}
	return Target{}, TargetError{Scheme: u.Scheme}
}

// Dial connects to t with the socket options and sends hello first; a nil
// hello dials raw (hello-less: every byte is payload, no acks or fins).
func Dial(ctx context.Context, t Target, hello *Hello, opts SocketOptions) (Conn, error) {
	switch {
	case t.Multiplexed():
		return nil, ErrNotMultiplexed // streams open on a Mux (DialMux)
	case t.Protocol == TCP && hello == nil:
		return DialTCPRaw(ctx, t.Addr, opts)
	case t.Protocol == TCP:
		return DialTCP(ctx, t.Addr, *hello, opts)
	case hello == nil:
		return DialWebSocketRaw(ctx, t.Addr, opts, nil)
	}
	return DialWebSocket(ctx, t.Addr, *hello, opts, nil)
}
