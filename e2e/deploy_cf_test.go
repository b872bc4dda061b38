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

// TestDeployDocTCPRoute follows docs/DEPLOY.md's TCP-route recipe
// (checkCFRecipe): cf set-env opens bp-server's TCP listener.
func TestDeployDocTCPRoute(t *testing.T) {
	t.Parallel()
	checkCFRecipe(t, "### A TCP route for the raw TCP protocol", "tcp")
}

// TestDeployDocGRPCRoute follows docs/DEPLOY.md's gRPC recipe
// (checkCFRecipe): cf set-env opens bp-server's gRPC listener.
func TestDeployDocGRPCRoute(t *testing.T) {
	t.Parallel()
	checkCFRecipe(t, "### gRPC and HTTP/2 through the router", "grpc")
}

// checkCFRecipe follows the recipe under heading in docs/DEPLOY.md: the
// app it names is the manifest's server app, every variable it sets with
// cf set-env is one no flag in the manifest's command overrides (a flag
// beats the environment), the destination port it posts is the one the
// variable sets, and the manifest's command with that variable set really
// opens the bp-server listener its "bp-server listening" log names by key,
// while without it the listener is off.
func checkCFRecipe(t *testing.T, heading, key string) {
	t.Helper()
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
	_, recipe, ok := strings.Cut(string(doc), heading)
	if !ok {
		t.Fatalf("docs/DEPLOY.md has no section %q", heading)
	}
	recipe, _, _ = strings.Cut(recipe, "\n## ")
	recipe, _, _ = strings.Cut(recipe, "\n### ")
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

	if dest := regexp.MustCompile(`\\"port\\":(\d+)`).FindStringSubmatch(recipe); dest == nil || ":"+dest[1] != sets[0][2] {
		t.Errorf("docs/DEPLOY.md: the route's destination port %v is not the %s %s the recipe sets", dest, sets[0][1], sets[0][2])
	}

	// As pushed: PORT from the platform, the listener off.
	port := fmt.Sprintf("PORT=%d", freePort(t))
	off := startProc(t, "bp-server", append(env, port), args...)
	if l := off.WaitLog(t, "bp-server listening", 20*time.Second); l[key] != "" {
		t.Errorf("manifest's bp-server listens on %s %v, want off", key, l[key])
	}
	// After cf set-env (the doc's port moved to a free loopback one).
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	on := startProc(t, "bp-server", append(env, fmt.Sprintf("PORT=%d", freePort(t)), sets[0][1]+"="+addr), args...)
	if l := on.WaitLog(t, "bp-server listening", 20*time.Second); l[key] != addr {
		t.Errorf("with %s=%s bp-server listens on %s %v", sets[0][1], addr, key, l[key])
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("%s listener after cf set-env: %v", key, err)
	}
	c.Close()
}
