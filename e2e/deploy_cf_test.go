package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cfApp is what the TCP-route test needs of a manifest.yml application.
type cfApp struct {
	Name    string            `yaml:"name"`
	Command string            `yaml:"command"`
	Env     map[string]string `yaml:"env"`
}

// TestDeployDocTCPRoute follows docs/DEPLOY.md's TCP-route recipe: the app
// it names is the manifest's server app, every variable it sets with cf
// set-env is one no flag in the manifest's command overrides (a flag beats
// the environment), and the manifest's command with that variable set
// really opens bp-server's TCP listener, while without it the listener is
// off.
func TestDeployDocTCPRoute(t *testing.T) {
	t.Parallel()
	var m struct {
		Applications []cfApp `yaml:"applications"`
	}
	readYAML(t, filepath.Join(repoRoot, "manifest.yml"), &m)
	var vars map[string]string
	readYAML(t, filepath.Join(repoRoot, "deploy/cf/vars.yml"), &vars)
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs/DEPLOY.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, recipe, ok := strings.Cut(string(doc), "### A TCP route for the raw TCP protocol")
	if !ok {
		t.Fatal("docs/DEPLOY.md has no TCP-route section")
	}
	recipe, _, _ = strings.Cut(recipe, "\n## ")

	name := regexp.MustCompile(`(?m)^SERVER=(\S+)`).FindStringSubmatch(recipe)
	if name == nil || name[1] != vars["server-host"] {
		t.Fatalf("docs/DEPLOY.md: SERVER= %v, want deploy/cf/vars.yml's server-host %q", name, vars["server-host"])
	}
	var server *cfApp
	for i, app := range m.Applications {
		if app.Name == "((server-host))" && strings.HasPrefix(app.Command, "bp-server") {
			server = &m.Applications[i]
		}
	}
	if server == nil {
		t.Fatal("manifest.yml has no bp-server app named ((server-host))")
	}
	for _, line := range regexp.MustCompile(`(?m)^cf (set-env|restart|app|map-route) (\S+)`).FindAllStringSubmatch(recipe, -1) {
		if line[2] != `"$SERVER"` {
			t.Errorf("docs/DEPLOY.md: %q names an app other than \"$SERVER\"", line[0])
		}
	}
	sets := regexp.MustCompile(`(?m)^cf set-env "\$SERVER" (BP_[A-Z_]+) (\S+)`).FindAllStringSubmatch(recipe, -1)
	if len(sets) == 0 {
		t.Fatal("docs/DEPLOY.md: the recipe sets no BP_ variable")
	}
	args := strings.Fields(server.Command)[1:]
	pairs := flagPairs(args)
	env := []string{}
	for k, v := range server.Env {
		env = append(env, k+"="+v)
	}
	for _, s := range sets {
		flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s[1], "BP_")), "_", "-")
		if _, ok := pairs[flag]; ok {
			t.Errorf("manifest.yml passes --%s, which beats the %s the doc sets with cf set-env", flag, s[1])
		}
	}

	// As pushed: PORT from the platform, the TCP listener off.
	port := fmt.Sprintf("PORT=%d", freePort(t))
	off := startProc(t, "bp-server", append(env, port), args...)
	if l := off.WaitLog(t, "bp-server listening", 20*time.Second); l["tcp"] != "" {
		t.Errorf("manifest's bp-server listens on TCP %v, want off", l["tcp"])
	}
	// After cf set-env (the doc's port moved to a free loopback one).
	tcp := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	on := startProc(t, "bp-server", append(env, fmt.Sprintf("PORT=%d", freePort(t)), sets[0][1]+"="+tcp), args...)
	if l := on.WaitLog(t, "bp-server listening", 20*time.Second); l["tcp"] != tcp {
		t.Errorf("with %s=%s bp-server listens on TCP %v", sets[0][1], tcp, l["tcp"])
	}
	c, err := net.DialTimeout("tcp", tcp, 5*time.Second)
	if err != nil {
		t.Fatalf("TCP listener after cf set-env: %v", err)
	}
	c.Close()
}
