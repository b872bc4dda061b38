package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-backpressure/go-backpressure/web"
)

// TestHandler: the page and its assets are served from the binary, with
// types a browser accepts for an ES module, and the page's relative links
// resolve to assets that exist.
func TestHandler(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/client", web.Handler())
	mux.Handle("/client/", web.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, tc := range []struct {
		name, method, path string
		status             int
		contentType        string // prefix
		body               string // substring
		location           string
	}{
		// The page itself, at the path DESIGN.md names.
		{"page", "GET", "/client", 200, "text/html", `<script type="module" src="client/app.js">`, ""},
		// Modules must come with a JavaScript type, or the browser refuses them.
		{"module", "GET", "/client/app.js", 200, "text/javascript", "bufferedAmount", ""},
		{"chart module", "GET", "/client/chart.js", 200, "text/javascript", "export function drawChart", ""},
		{"format module", "GET", "/client/format.js", 200, "text/javascript", "export function parseSize", ""},
		{"style", "GET", "/client/style.css", 200, "text/css", "#stall", ""},
		{"head", "HEAD", "/client", 200, "text/html", "", ""},
		// A trailing slash would break the page's relative links: redirect.
		{"trailing slash", "GET", "/client/", 301, "", "", "../client"},
		// index.html by name is the page too.
		{"index by name", "GET", "/client/index.html", 200, "text/html", "browser client", ""},
		// Sad paths.
		{"missing asset", "GET", "/client/nope.js", 404, "", "", ""},
		{"post", "POST", "/client", 405, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
				t.Errorf("Content-Type %q, want %q...", ct, tc.contentType)
			}
			if !strings.Contains(string(body), tc.body) {
				t.Errorf("body does not contain %q", tc.body)
			}
			if loc := resp.Header.Get("Location"); loc != tc.location {
				t.Errorf("Location %q, want %q", loc, tc.location)
			}
		})
	}
}
