package admission

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// OriginPolicy decides which browser pages may open a WebSocket: requests
// without an Origin header (bp-client, bp-relay, curl: not a browser) and
// same-origin pages always may; other origins only when listed, or when the
// list is "*".
type OriginPolicy struct {
	any     bool
	allowed map[string]bool // "scheme://host:port", lower case
}

// ParseOriginPolicy reads a comma-separated list of origins
// (https://example.com, http://localhost:3000) or "*"; empty is same origin
// only.
func ParseOriginPolicy(list string) (*OriginPolicy, error) {
	p := &OriginPolicy{allowed: map[string]bool{}}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
			continue
		case item == "*":
			p.any = true
			continue
		}
		u, err := url.Parse(item)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("origin %q: want scheme://host[:port], e.g. https://example.com, or *", item)
		}
		p.allowed[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	return p, nil
}

// Allowed reports whether r may open a WebSocket.
func (p *OriginPolicy) Allowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || p.any {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false // includes "null": a sandboxed or file:// page
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return p.allowed[strings.ToLower(u.Scheme+"://"+u.Host)]
}

// String describes the policy for logs.
func (p *OriginPolicy) String() string {
	if p.any {
		return "*"
	}
	if len(p.allowed) == 0 {
		return "same origin"
	}
	list := make([]string, 0, len(p.allowed))
	for o := range p.allowed {
		list = append(list, o)
	}
	slices.Sort(list)
	return "same origin, " + strings.Join(list, ", ")
}
