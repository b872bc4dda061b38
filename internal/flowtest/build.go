package flowtest

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildCommands builds the module's commands pkgs (as "./cmd/bp-server")
// into a temporary directory, removed at cleanup, and returns it: the
// binaries the script tests (bench, soak, connmem) run as real
// processes. root is the module's root, relative to the test's package.
func BuildCommands(tb testing.TB, root string, pkgs ...string) string {
	tb.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		tb.Fatal(err)
	}
	bin := tb.TempDir()
	build := exec.Command("go", append([]string{"build", "-o", bin + "/"}, pkgs...)...)
	build.Dir = abs
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}
