package metrics_test

import (
	"os"
	"strings"
	"testing"
)

// metricsDocSection is the "## heading" section of docs/METRICS.md, up to
// the next one: each binary's table, which a test keeps in step with its
// registry.
func metricsDocSection(t *testing.T, heading string) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## "+heading+"\n")
	if !ok {
		t.Fatalf(`docs/METRICS.md has no "## %s" section`, heading)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	return section
}
