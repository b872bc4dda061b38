package web

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

//go:embed static/index.html
var indexHTML []byte

// Handler serves the browser client: the page at /client and its assets at
// /client/<name>. The page refers to its assets and to /ws relative to its
// own path, so it also works under a path prefix that a proxy adds.
func Handler() http.Handler {
	assets, err := fs.Sub(static, "static")
	if err != nil {
		// The embed pattern guarantees the directory; this cannot happen.
		panic(err)
	}
	files := http.FileServerFS(assets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/client")
		name = strings.TrimPrefix(name, "/")
		switch {
		case name == "" && strings.HasSuffix(r.URL.Path, "/"):
			// /client/ would resolve the page's relative links one level
			// too deep: send the browser to /client. The Location stays
			// relative (http.Redirect would make it absolute), so a path
			// prefix added by a proxy survives.
			w.Header().Set("Location", "../client")
			w.WriteHeader(http.StatusMovedPermanently)
			return
		case name == "", name == "index.html":
			name = "index.html"
		}
		// The page is small and changes with the binary: always revalidate,
		// so a new build is never hidden behind a cached old page.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if name == "index.html" {
			// The file server would redirect /index.html to ./; serve the
			// bytes directly.
			http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(indexHTML))
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		files.ServeHTTP(w, r2)
	})
}

// Asset returns one of the page's files (chart.js, format.js, style.css),
// for pages that inline them rather than fetch them: bp-client's HTML
// report (pkg/report) draws its charts with the page's own chart code.
func Asset(name string) ([]byte, error) { return static.ReadFile("static/" + name) }
