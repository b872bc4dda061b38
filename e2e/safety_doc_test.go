package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestSafetyDocHeaderSlack: docs/SAFETY.md says how far request headers may
// run past --max-header-bytes before bp-server answers 431; a real server
// accepts headers just inside that slack and refuses them just past it.
func TestSafetyDocHeaderSlack(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs/SAFETY.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?m)^\\| `--max-header-bytes` .*run (\\d+) KiB past the setting").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/SAFETY.md: the --max-header-bytes row states no slack")
	}
	slack, _ := strconv.Atoi(string(m[1]))
	const limit = 16 << 10
	srv := startServer(t, "--max-header-bytes", "16KiB")
	status := func(headerBytes int) int {
		req, _ := http.NewRequest("GET", "http://"+srv.HTTPAddr+"/healthz", nil)
		req.Header.Set("X-Fill", strings.Repeat("x", headerBytes))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%d header bytes: %v", headerBytes, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	inside, past := limit+slack<<10-1024, limit+slack<<10+1024
	if got := status(inside); got != http.StatusOK {
		t.Errorf("%d header bytes (inside the documented %d KiB slack): HTTP %d, want 200", inside, slack, got)
	}
	if got := status(past); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("%d header bytes (past the documented slack): HTTP %d, want 431", past, got)
	}
}
