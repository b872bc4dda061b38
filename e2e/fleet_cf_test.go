package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestManifestFleet: the manifest's client app is a fleet whose size and
// BP_INSTANCES are one variable, and its command with that environment
// takes its place from CF_INSTANCE_INDEX: the last index starts as that
// instance, one past it is refused naming --instance (exit status 2).
func TestManifestFleet(t *testing.T) {
	t.Parallel()
	var m struct {
		Applications []struct {
			cfApp     `yaml:",inline"`
			Instances string `yaml:"instances"`
		} `yaml:"applications"`
	}
	readYAML(t, filepath.Join(repoRoot, "manifest.yml"), &m)
	var vars map[string]string
	readYAML(t, filepath.Join(repoRoot, "deploy/cf/vars.yml"), &vars)
	subst := func(s string) string {
		for k, v := range vars {
			s = strings.ReplaceAll(s, "(("+k+"))", v)
		}
		return s
	}
	for _, app := range m.Applications {
		if !strings.HasPrefix(app.Command, "bp-client") {
			continue
		}
		if app.Instances == "" || app.Instances != app.Env["BP_INSTANCES"] {
			t.Fatalf("client app: instances %q and BP_INSTANCES %q must be the same variable", app.Instances, app.Env["BP_INSTANCES"])
		}
		n, err := strconv.Atoi(subst(app.Instances))
		if err != nil || n < 2 {
			t.Fatalf("client app: %s is %q in deploy/cf/vars.yml, want a fleet of at least 2", app.Instances, subst(app.Instances))
		}
		var env []string
		for k, v := range app.Env {
			env = append(env, k+"="+subst(v))
		}
		env = append(env, fmt.Sprintf("PORT=%d", freePort(t)))
		args := strings.Fields(subst(app.Command))[1:]
		last := startProc(t, "bp-client", append(env, fmt.Sprintf("CF_INSTANCE_INDEX=%d", n-1)), args...)
		l := last.WaitLog(t, "fleet run starting", 20*time.Second)
		if l["instance"] != float64(n-1) || l["instances"] != float64(n) {
			t.Errorf("with CF_INSTANCE_INDEX=%d: started as instance %v of %v", n-1, l["instance"], l["instances"])
		}
		past := startProc(t, "bp-client", append(env, fmt.Sprintf("CF_INSTANCE_INDEX=%d", n)), args...)
		if code := past.Wait(t, 20*time.Second); code != 2 || !strings.Contains(past.Stderr(), "--instance") {
			t.Errorf("with CF_INSTANCE_INDEX=%d: exit status %d, want 2 naming --instance; stderr:\n%s", n, code, past.Stderr())
		}
		return
	}
	t.Fatal("manifest.yml has no bp-client app")
}
