package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFleetBadInput: bad fleet settings and reports merge cannot take end
// with exit status 2 and a message naming the setting or the file.
func TestFleetBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	report := func(fleet string, instance string) string {
		return "{\n\"run_id\": \"r" + instance + "\", \"direction\": \"up\", \"fleet\": {\"name\": \"" + fleet + "\", \"instance\": " + instance + ", \"instances\": 2}}\n"
	}
	a := write("a.json", report("one", "0"))
	other := write("other.json", report("two", "1"))
	damaged := write("damaged.json", "{\n\"run_id\": \"r1\", \"bytes_written\": \n")
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	tests := []struct {
		name string
		env  []string
		args []string
		want string // in stderr
	}{
		// The scheduler's index past the fleet's size.
		{name: "index outside", env: []string{"JOB_COMPLETION_INDEX=4"}, args: []string{"--instances", "4"}, want: "--instance"},
		// An index with no fleet size: told to set --instances.
		{name: "index without size", env: []string{"CF_INSTANCE_INDEX=1"}, want: "set --instances"},
		// A start an hour ago, for a 10 s run.
		{name: "start long past", args: []string{"--instances", "2", "--instance", "0", "--connections", "2", "--start-at", past}, want: "--start-at"},
		// A start that is no time.
		{name: "start not a time", args: []string{"--start-at", "soon"}, want: "--start-at"},
		// Fewer connections than instances.
		{name: "connections", args: []string{"--instances", "3", "--instance", "0", "--connections", "2"}, want: "--connections"},
		// A report of another fleet.
		{name: "merge other fleet", args: []string{"merge", a, other}, want: "other.json: a report of fleet \"two\""},
		// A damaged report.
		{name: "merge damaged", args: []string{"merge", a, damaged}, want: "damaged.json: line 1: damaged report"},
		// A file that is not there.
		{name: "merge missing file", args: []string{"merge", filepath.Join(dir, "none.json")}, want: "none.json: no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binary("bp-client"), tt.args...)
			cmd.Env = testEnv(tt.env)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tt.want) {
				t.Fatalf("exit %v, want status 2 with %q; output:\n%s", err, tt.want, out)
			}
		})
	}
}

// TestFleetLateStart: an instance that comes up after --start-at (within
// the run's length) says how late and runs at once.
func TestFleetLateStart(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	at := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	began := time.Now()
	sum, code, stderr := runClientEnv(t, []string{"JOB_COMPLETION_INDEX=1"}, "--target", srv.TCPURL(), "--duration", "2s",
		"--rate", "50", "--payload-size", "1KiB", "--instances", "2", "--connections", "2", "--start-at", at)
	if code != 0 || !strings.Contains(stderr, "starting late") || sum.Fleet == nil || sum.Fleet.Instance != 1 {
		t.Fatalf("exit %d, fleet %+v; want 0, instance 1 and \"starting late\" in:\n%s", code, sum.Fleet, stderr)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("a late instance took %s for a 2 s run: it waited", took)
	}
}
