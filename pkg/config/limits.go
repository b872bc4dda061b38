package config

import (
	"net/http"
	"os"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/admission"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// Limits are the settings that protect a listening binary (bp-server,
// bp-relay) from whatever arrives on its ports. docs/SAFETY.md explains
// each and its default.
type Limits struct {
	MaxConnections     int           `envconfig:"MAX_CONNECTIONS" flag:"max-connections" default:"20000" desc:"most connections each listener (HTTP /ws, TCP; bp-server's gRPC too, and its /h2 streams one each) serves at once; more are refused at once, TCP and gRPC closed, WebSocket and /h2 answered 503, and counted (0: no limit). Left unset, it is lowered at start to what the file descriptor limit (ulimit -n) fits beside the other listeners' and the process's own files, and logged; a value set that does not fit is warned about"`
	MaxHTTPConnections int           `envconfig:"MAX_HTTP_CONNECTIONS" flag:"max-http-connections" default:"1000" desc:"most HTTP connections that are not WebSockets (sending request headers, serving /metrics, /healthz or a page, idle keep-alive) each HTTP listener holds; beyond it the oldest idle one, or one sending headers for 1s, is closed for the new one, and counted; until one may be, new connections wait in the accept queue (0: no limit)"`
	ReadHeaderTimeout  time.Duration `envconfig:"READ_HEADER_TIMEOUT" flag:"read-header-timeout" default:"10s" desc:"how long an HTTP client may take to send its request headers"`
	MaxHeaderBytes     Size          `envconfig:"MAX_HEADER_BYTES" flag:"max-header-bytes" default:"64KiB" desc:"largest HTTP request header block; larger ones get 431"`
	WSMaxMessage       Size          `envconfig:"WS_MAX_MESSAGE" flag:"ws-max-message" default:"16MiB" desc:"largest WebSocket message a peer may send; larger ones are closed with code 1009"`
	AllowedOrigins     string        `envconfig:"ALLOWED_ORIGINS" flag:"allowed-origins" default:"" desc:"browser origins allowed to open /ws (and bp-server's /h2, /h2/acks) besides the page's own: comma-separated https://host:port, or * for any (requests without an Origin header, i.e. not from a browser, are always allowed)"`

	// MaxConnectionsDefault is true when neither --max-connections nor its
	// environment variable was given (NoteDefaults): the default may then
	// be lowered to fit RLIMIT_NOFILE, which a value the user chose is not.
	MaxConnectionsDefault bool `ignored:"true"`
}

// NoteDefaults records which limits were left at their defaults, from the
// flags given (loaded) and the environment.
func (l *Limits) NoteDefaults(loaded *Loaded) {
	_, inEnv := os.LookupEnv(EnvName("max-connections"))
	l.MaxConnectionsDefault = !loaded.Set("max-connections") && !inEnv
}

// Validate checks the limits.
func (l Limits) Validate() error {
	switch {
	case l.MaxConnections < 0:
		return Invalid("max-connections", l.MaxConnections, "must not be negative (0: no limit)")
	case l.MaxHTTPConnections < 0:
		return Invalid("max-http-connections", l.MaxHTTPConnections, "must not be negative (0: no limit)")
	case l.ReadHeaderTimeout <= 0:
		return Invalid("read-header-timeout", l.ReadHeaderTimeout, "must be positive")
	case l.MaxHeaderBytes < 1<<10 || l.MaxHeaderBytes > 16<<20:
		return Invalid("max-header-bytes", l.MaxHeaderBytes, "must be between 1KiB and 16MiB")
	case l.WSMaxMessage < flow.MaxControlSize || l.WSMaxMessage > 1<<30:
		return Invalid("ws-max-message", l.WSMaxMessage, "must be between 4KiB and 1GiB")
	}
	if _, err := admission.ParseOriginPolicy(l.AllowedOrigins); err != nil {
		return Invalid("allowed-origins", l.AllowedOrigins, err.Error())
	}
	return nil
}

// Origins is the origin policy (Validate has checked it parses).
func (l Limits) Origins() *admission.OriginPolicy {
	p, err := admission.ParseOriginPolicy(l.AllowedOrigins)
	if err != nil {
		p, _ = admission.ParseOriginPolicy("")
	}
	return p
}

// HTTPServer applies the header limits to srv.
func (l Limits) HTTPServer(srv *http.Server) *http.Server {
	srv.ReadHeaderTimeout = l.ReadHeaderTimeout
	srv.MaxHeaderBytes = int(l.MaxHeaderBytes)
	// Keep-alive connections between requests (scrapes, page loads) end
	// after a while; hijacked WebSocket connections are not affected.
	srv.IdleTimeout = 2 * time.Minute
	return srv
}
