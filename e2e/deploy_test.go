package e2e

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	composecli "github.com/compose-spec/compose-go/v2/cli"
	composetypes "github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/go-backpressure/go-backpressure/internal/lab"
)

// repoRoot is the repository, seen from this package.
const repoRoot = ".."

// compose is the part of docker-compose.yml the tests read.
type compose struct {
	Name     string `yaml:"name"`
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
		DependsOn   []string          `yaml:"depends_on"`
		NetworkMode string            `yaml:"network_mode"`
	} `yaml:"services"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// pinned reports whether an image reference names a version: a tag with a
// digit in it (not latest), or a digest.
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return false
	}
	tag := image[i+1:]
	return tag != "latest" && strings.ContainsAny(tag, "0123456789")
}

// helpFlags are the flags a binary's --help lists.
func helpFlags(t *testing.T, bin string) map[string]bool {
	t.Helper()
	out, _ := exec.Command(binary(bin), "--help").CombinedOutput()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 5 {
		t.Fatalf("%s --help lists %d flags:\n%s", bin, len(flags), out)
	}
	return flags
}

// flagPairs turns "--name=value" and "--name value" arguments into
// name -> value ("" for a bare boolean flag).
func flagPairs(args []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := strings.TrimPrefix(args[i], "--")
		if a == args[i] {
			continue
		}
		if name, value, ok := strings.Cut(a, "="); ok {
			out[name] = value
			continue
		}
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			out[a] = args[i+1]
			i++
			continue
		}
		out[a] = ""
	}
	return out
}

// TestCompose checks docker-compose.yml without a Docker engine: every
// service the lab needs, images pinned, mounted files present, every
// command's flags accepted by its binary and the same as the native lab's
// (make lab-observe), Prometheus's targets matching the services; then
// "docker compose config" when the compose plugin is installed.
func TestCompose(t *testing.T) {
	t.Parallel()
	var c compose
	readYAML(t, filepath.Join(repoRoot, "docker-compose.yml"), &c)
	for _, name := range []string{"bp-server", "haproxy", "bp-sockets", "bp-relay", "bp-client", "prometheus", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("no service %s", name)
		}
	}
	flags := map[string]map[string]bool{}
	for name, s := range c.Services {
		if s.Build == nil && !pinned(s.Image) {
			t.Errorf("service %s: image %q is not pinned to a version", name, s.Image)
		}
		for _, v := range s.Volumes {
			host := strings.Split(v, ":")[0]
			if !strings.HasPrefix(host, "./") {
				continue // a named volume
			}
			if _, err := os.Stat(filepath.Join(repoRoot, host)); err != nil {
				t.Errorf("service %s mounts %s, which does not exist", name, host)
			}
		}
		if !strings.HasPrefix(name, "bp-") {
			continue
		}
		if s.Build == nil {
			t.Errorf("service %s: not built from the Dockerfile", name)
		}
		if len(s.Command) == 0 || s.Command[0] != name {
			t.Errorf("service %s: command %q does not run %s", name, s.Command, name)
			continue
		}
		if flags[name] == nil {
			flags[name] = helpFlags(t, name)
		}
		for flag := range flagPairs(s.Command[1:]) {
			if !flags[name][flag] {
				t.Errorf("service %s: %s has no flag --%s", name, name, flag)
			}
		}
	}

	// The same settings as the native lab, so both show the same thing.
	for svc, want := range map[string][]string{"bp-server": lab.ObserveServer, "bp-relay": lab.ObserveRelay, "bp-client": lab.ObserveClient} {
		have := flagPairs(c.Services[svc].Command)
		for name, value := range flagPairs(want) {
			if v, ok := have[name]; !ok || v != value {
				t.Errorf("service %s: --%s is %q here, %q in make lab-observe (internal/lab/observe.go)", svc, name, v, value)
			}
		}
	}

	// The path: client -> relay -> haproxy -> server.
	if got := flagPairs(c.Services["bp-client"].Command)["target"]; !strings.Contains(got, "bp-relay:") {
		t.Errorf("bp-client --target %q: want the relay", got)
	}
	if got := flagPairs(c.Services["bp-relay"].Command)["upstream"]; !strings.Contains(got, "haproxy:"+strings.TrimPrefix(c.Services["haproxy"].Environment["BP_HAPROXY_LISTEN"], ":")) {
		t.Errorf("bp-relay --upstream %q: want HAProxy's BP_HAPROXY_LISTEN", got)
	}
	if got := c.Services["haproxy"].Environment["BP_HAPROXY_UPSTREAM"]; got != "bp-server:8080" {
		t.Errorf("HAProxy's upstream %q, want bp-server:8080", got)
	}

	// Prometheus scrapes each service where it serves /metrics.
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string          `yaml:"targets"`
				Labels  map[string]string `yaml:"labels"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, filepath.Join(repoRoot, "deploy/prometheus/prometheus.yml"), &prom)
	port := func(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }
	wantTargets := map[string]string{
		"client":  "bp-client:" + port(flagPairs(c.Services["bp-client"].Command)["metrics-addr"]),
		"relay":   "bp-relay:" + port(flagPairs(c.Services["bp-relay"].Command)["http-addr"]),
		"haproxy": "haproxy:" + port(c.Services["haproxy"].Environment["BP_HAPROXY_STATS"]),
		"server":  "bp-server:" + port(flagPairs(c.Services["bp-server"].Command)["http-addr"]),
		// The sidecar shares HAProxy's network namespace, so it is reached
		// at HAProxy's name, on its own --metrics-addr port.
		"haproxy/sockets": "haproxy:" + port(flagPairs(c.Services["bp-sockets"].Command)["metrics-addr"]),
	}
	if got := c.Services["bp-sockets"].NetworkMode; got != "service:haproxy" {
		t.Errorf("bp-sockets network_mode %q, want service:haproxy (it reads HAProxy's sockets)", got)
	}
	haveTargets := map[string]string{}
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			key := st.Labels["hop"]
			if sc.JobName == "bp-sockets" {
				key += "/sockets"
			}
			haveTargets[key] = strings.Join(st.Targets, ",")
		}
	}
	for hop, want := range wantTargets {
		if haveTargets[hop] != want {
			t.Errorf("prometheus.yml: hop %s scrapes %q, want %q (the compose service's metrics port)", hop, haveTargets[hop], want)
		}
	}
	if len(haveTargets) != len(wantTargets) {
		t.Errorf("prometheus.yml hops %v, want exactly %v", haveTargets, wantTargets)
	}

	// The Compose Specification, as docker compose resolves it (loadCompose).
	t.Run("compose spec", func(t *testing.T) {
		p := loadCompose(t)
		for _, name := range []string{"bp-server", "haproxy", "bp-sockets", "bp-relay", "bp-client", "prometheus", "grafana"} {
			if _, err := p.GetService(name); err != nil {
				t.Errorf("resolved project: %v", err)
			}
		}
	})
	t.Run("docker compose config", func(t *testing.T) {
		docker, err := exec.LookPath("docker")
		if err == nil {
			err = exec.Command(docker, "compose", "version").Run()
		}
		if err != nil {
			t.Skip("the docker compose plugin is not installed: checked with compose-go above")
		}
		out, err := exec.Command(docker, "compose", "-f", filepath.Join(repoRoot, "docker-compose.yml"), "config", "-q").CombinedOutput()
		if err != nil {
			t.Errorf("docker compose config: %v\n%s", err, out)
		}
	})
}

// loadCompose loads docker-compose.yml with compose-go, the loader docker
// compose itself uses: checked against the Compose Specification's schema
// and resolved the way "docker compose config" does, without an engine.
func loadCompose(t *testing.T) *composetypes.Project {
	t.Helper()
	opts, err := composecli.NewProjectOptions([]string{filepath.Join(repoRoot, "docker-compose.yml")},
		composecli.WithWorkingDirectory(repoRoot), composecli.WithOsEnv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load as the Compose Specification: %v", err)
	}
	return p
}

// TestPrometheusConfig: promtool accepts deploy/prometheus/prometheus.yml
// and the native lab's rendering of it.
func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	promtool := needTool(t, "promtool", "prometheus")
	src := filepath.Join(repoRoot, "deploy/prometheus/prometheus.yml")
	rendered, err := lab.RenderPrometheus(src, map[string]string{
		"client": "127.0.0.1:1", "relay": "127.0.0.1:2", "haproxy": "127.0.0.1:3", "server": "127.0.0.1:4",
		"haproxy/sockets": "127.0.0.1:5",
	}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"127.0.0.1:1", "127.0.0.1:4", "127.0.0.1:5", "scrape_interval: 1s", "hop: haproxy"} {
		if !strings.Contains(string(rendered), want) {
			t.Errorf("rendered config lacks %q:\n%s", want, rendered)
		}
	}
	if _, err := lab.RenderPrometheus(src, map[string]string{"client": "127.0.0.1:1"}, 0); err == nil {
		t.Error("rendering without every hop's address: no error")
	}
	renderedPath := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(renderedPath, rendered, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{src, renderedPath} {
		out, err := exec.Command(promtool, "check", "config", f).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool check config %s: %v\n%s", f, err, out)
		}
	}
}

// goModVersion is go.mod's go line, e.g. [1 26 8].
func goModVersion(t *testing.T) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+(?:\.\d+)*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return versionParts(string(m[1]))
}

func versionParts(v string) []int {
	var out []int
	for _, p := range strings.Split(strings.TrimPrefix(v, "go"), ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			break
		}
		out = append(out, n)
	}
	return out
}

// TestDockerfile checks the Dockerfile without an engine, then runs its
// build command natively: the binaries come out static, with the version
// stamped.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	froms := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, found FROM %v", froms)
	}
	goVersion := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)`).FindStringSubmatch(df)
	for _, f := range froms {
		image := f[1]
		if goVersion != nil {
			image = strings.ReplaceAll(image, "${GO_VERSION}", goVersion[1])
		}
		if image != "scratch" && !pinned(image) {
			t.Errorf("base image %q is not pinned", image)
		}
	}
	if goVersion == nil || slices.Compare(versionParts(goVersion[1]), goModVersion(t)) < 0 {
		t.Errorf("ARG GO_VERSION %v is older than go.mod's go line %v", goVersion, goModVersion(t))
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "pkg/config.Version=${VERSION}",
		"./cmd/bp-server", "./cmd/bp-client", "./cmd/bp-relay", "EXPOSE 8080", `CMD ["bp-server"]`} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	user := regexp.MustCompile(`(?m)^USER (\S+)`).FindAllStringSubmatch(df, -1)
	if len(user) == 0 || strings.HasPrefix(user[len(user)-1][1], "root") || strings.HasPrefix(user[len(user)-1][1], "0:") || user[len(user)-1][1] == "0" {
		t.Errorf("runtime image runs as %v, want a non-root user", user)
	}
	if _, err := os.Stat(filepath.Join(repoRoot, ".dockerignore")); err != nil {
		t.Error("no .dockerignore")
	}

	// The build command, natively.
	out := t.TempDir()
	build := exec.Command("go", "build", "-trimpath",
		"-ldflags", "-s -w -X github.com/go-backpressure/go-backpressure/pkg/config.Version=v9.9.9-test",
		"-o", out+"/", "./cmd/bp-server", "./cmd/bp-client", "./cmd/bp-relay")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the Dockerfile's go build: %v\n%s", err, msg)
	}
	for _, bin := range []string{"bp-server", "bp-client", "bp-relay"} {
		path := filepath.Join(out, bin)
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked", bin)
			}
		}
		f.Close()
		v, err := exec.Command(path, "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(v), "v9.9.9-test") {
			t.Errorf("%s --version: %q (%v), want the stamped v9.9.9-test", bin, v, err)
		}
	}
}

// TestManifest checks manifest.yml for Cloud Foundry: both apps, their
// routes and health checks, the buildpack settings, commands whose flags
// the binaries accept, and variables that deploy/cf/vars.yml sets.
func TestManifest(t *testing.T) {
	t.Parallel()
	var m struct {
		Applications []struct {
			Name                    string                   `yaml:"name"`
			Buildpacks              []string                 `yaml:"buildpacks"`
			Routes                  []struct{ Route string } `yaml:"routes"`
			Command                 string                   `yaml:"command"`
			HealthCheckType         string                   `yaml:"health-check-type"`
			HealthCheckHTTPEndpoint string                   `yaml:"health-check-http-endpoint"`
			Env                     map[string]string        `yaml:"env"`
		} `yaml:"applications"`
	}
	raw, err := os.ReadFile(filepath.Join(repoRoot, "manifest.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var vars map[string]string
	readYAML(t, filepath.Join(repoRoot, "deploy/cf/vars.yml"), &vars)
	for _, v := range regexp.MustCompile(`\(\(([a-z0-9-]+)\)\)`).FindAllStringSubmatch(string(raw), -1) {
		if vars[v[1]] == "" {
			t.Errorf("manifest.yml uses ((%s)), which deploy/cf/vars.yml does not set", v[1])
		}
	}
	if len(m.Applications) != 2 {
		t.Fatalf("want 2 applications, found %d", len(m.Applications))
	}
	byBinary := map[string]int{}
	for i, app := range m.Applications {
		fields := strings.Fields(app.Command)
		if len(fields) == 0 {
			t.Errorf("app %s: no command", app.Name)
			continue
		}
		bin := fields[0]
		byBinary[bin] = i
		where := fmt.Sprintf("app %s (%s)", app.Name, bin)
		if !slices.Contains(app.Buildpacks, "go_buildpack") {
			t.Errorf("%s: buildpacks %v, want go_buildpack", where, app.Buildpacks)
		}
		if app.HealthCheckType != "http" || app.HealthCheckHTTPEndpoint != "/healthz" {
			t.Errorf("%s: health check %s %s, want http /healthz", where, app.HealthCheckType, app.HealthCheckHTTPEndpoint)
		}
		if len(app.Routes) != 1 || !strings.HasSuffix(app.Routes[0].Route, ".((domain))") {
			t.Errorf("%s: routes %v, want one on ((domain))", where, app.Routes)
		}
		gv := app.Env["GOVERSION"]
		if want := goModVersion(t); slices.Compare(versionParts(gv)[:min(2, len(versionParts(gv)))], want[:2]) < 0 {
			t.Errorf("%s: GOVERSION %q older than go.mod's %v", where, gv, want)
		}
		for _, pkg := range strings.Fields(app.Env["GO_INSTALL_PACKAGE_SPEC"]) {
			if _, err := os.Stat(filepath.Join(repoRoot, pkg)); err != nil {
				t.Errorf("%s: GO_INSTALL_PACKAGE_SPEC names %s, which does not exist", where, pkg)
			}
		}
		if !strings.Contains(app.Env["GO_INSTALL_PACKAGE_SPEC"], "./cmd/"+bin) {
			t.Errorf("%s: GO_INSTALL_PACKAGE_SPEC %q does not build %s", where, app.Env["GO_INSTALL_PACKAGE_SPEC"], bin)
		}
		accepted := helpFlags(t, bin)
		pairs := flagPairs(fields[1:])
		for flag := range pairs {
			if !accepted[flag] {
				t.Errorf("%s: %s has no flag --%s", where, bin, flag)
			}
		}
		// PORT is the platform's: the listener flags it would beat stay unset.
		if _, ok := pairs["http-addr"]; ok {
			t.Errorf("%s: --http-addr set; PORT must decide", where)
		}
		if _, ok := pairs["metrics-addr"]; ok {
			t.Errorf("%s: --metrics-addr set; PORT must decide", where)
		}
	}
	srv, okS := byBinary["bp-server"]
	cli, okC := byBinary["bp-client"]
	if !okS || !okC {
		t.Fatalf("want a bp-server and a bp-client app, have %v", byBinary)
	}
	target := flagPairs(strings.Fields(m.Applications[cli].Command))["target"]
	if want := "wss://" + m.Applications[srv].Routes[0].Route + "/ws"; target != want {
		t.Errorf("bp-client --target %q, want the server's route through the router: %q", target, want)
	}
	if _, ok := flagPairs(strings.Fields(m.Applications[cli].Command))["loop"]; !ok {
		t.Error("bp-client app does not --loop")
	}
}
