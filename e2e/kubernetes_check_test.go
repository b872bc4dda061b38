package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// projectBinaries are the binaries the project's image holds.
var projectBinaries = []string{"bp-server", "bp-client", "bp-relay", "bp-sockets"}

// checkJob: the fleet is an Indexed Job whose BP_INSTANCES is its size.
func checkJob(t *testing.T, j batchv1.Job) {
	t.Helper()
	if j.Spec.CompletionMode == nil || *j.Spec.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("Job %s: completionMode %v, want Indexed (each pod's JOB_COMPLETION_INDEX is its --instance)", j.Name, j.Spec.CompletionMode)
	}
	if j.Spec.Completions == nil || j.Spec.Parallelism == nil || *j.Spec.Completions != *j.Spec.Parallelism {
		t.Fatalf("Job %s: completions %s and parallelism %s must be set and equal (the whole fleet at once)", j.Name, intOrUnset(j.Spec.Completions), intOrUnset(j.Spec.Parallelism))
	}
	for _, c := range j.Spec.Template.Spec.Containers {
		got := ""
		for _, e := range c.Env {
			if e.Name == "BP_INSTANCES" {
				got = e.Value
			}
		}
		if got != strconv.Itoa(int(*j.Spec.Completions)) {
			t.Errorf("Job %s: container %s has BP_INSTANCES %q, want the completions, %d", j.Name, c.Name, got, *j.Spec.Completions)
		}
	}
}

// checkHAProxyConfig: the ConfigMap's haproxy.cfg is the lab's own file.
func checkHAProxyConfig(t *testing.T, c corev1.ConfigMap) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "haproxy", "haproxy-tcp.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Data["haproxy.cfg"] != string(want) {
		t.Errorf("ConfigMap %s: haproxy.cfg differs from deploy/haproxy/haproxy-tcp.cfg: cp deploy/haproxy/haproxy-tcp.cfg deploy/kubernetes/base/", c.Name)
	}
}

// checkPod: non-root, bounded, scraped; each container's image, flags,
// ports and probes exist.
func checkPod(t *testing.T, p podOf, help map[string]map[string]bool) {
	t.Helper()
	psc := p.spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("%s: the pod's securityContext must set runAsNonRoot: true", p.name)
	}
	ports := map[string]bool{}
	for _, c := range p.spec.Containers {
		for _, cp := range c.Ports {
			ports[cp.Name], ports[strconv.Itoa(int(cp.ContainerPort))] = true, true
		}
	}
	if p.annotations["prometheus.io/scrape"] != "true" || p.annotations["prometheus.io/path"] != "/metrics" || !ports[p.annotations["prometheus.io/port"]] {
		t.Errorf("%s: prometheus.io annotations %v: want scrape \"true\", path /metrics and a port the pod has", p.name, p.annotations)
	}
	for _, c := range p.spec.Containers {
		where := p.name + " container " + c.Name
		checkContainerSecurity(t, where, c, psc)
		for _, res := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
			if res.Cpu().IsZero() || res.Memory().IsZero() {
				t.Errorf("%s: needs cpu and memory requests and limits, has %+v", where, c.Resources)
			}
		}
		checkContainerRuns(t, where, c, help)
	}
}

// checkContainerSecurity: no root, no escalation, no capability, a
// read-only root.
func checkContainerSecurity(t *testing.T, where string, c corev1.Container, psc *corev1.PodSecurityContext) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: securityContext must refuse privilege escalation, drop ALL capabilities and keep the root read-only", where)
		return
	}
	uid := sc.RunAsUser
	if uid == nil && psc != nil {
		uid = psc.RunAsUser
	}
	if uid == nil || *uid == 0 {
		t.Errorf("%s: runs as user %v, want a numeric non-root user (runAsNonRoot cannot check a name)", where, uid)
	}
}

// checkContainerRuns: the project's image runs one of its binaries with
// flags that binary has, listening on the ports the container declares,
// its probes on /healthz; another image is pinned.
func checkContainerRuns(t *testing.T, where string, c corev1.Container, help map[string]map[string]bool) {
	t.Helper()
	named := map[string]int32{}
	for _, cp := range c.Ports {
		named[cp.Name] = cp.ContainerPort
	}
	project := strings.HasPrefix(c.Image, "go-backpressure:")
	if !pinned(c.Image) {
		t.Errorf("%s: image %q is not pinned to a version", where, c.Image)
	}
	for _, probe := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		checkProbe(t, where, probe, named, project)
	}
	if !project {
		return
	}
	if len(c.Command) != 1 || !slices.Contains(projectBinaries, c.Command[0]) {
		t.Fatalf("%s: command %v, want one of %v", where, c.Command, projectBinaries)
	}
	bin := c.Command[0]
	if help[bin] == nil {
		help[bin] = helpFlags(t, bin)
	}
	listens := regexp.MustCompile(`^:(\d+)$`)
	for name, value := range flagPairs(c.Args) {
		if !help[bin][name] {
			t.Errorf("%s: %s has no flag --%s", where, bin, name)
		}
		if m := listens.FindStringSubmatch(value); m != nil && !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return strconv.Itoa(int(p.ContainerPort)) == m[1] }) {
			t.Errorf("%s: --%s=%s listens on a port the container does not declare", where, name, value)
		}
	}
	for _, e := range c.Env {
		flag := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(e.Name, "BP_"), "_", "-"))
		if strings.HasPrefix(e.Name, "BP_") && !help[bin][flag] {
			t.Errorf("%s: %s has no setting %s (--%s)", where, bin, e.Name, flag)
		}
	}
}

// checkProbe: a probe reaches a declared port, the project's binaries on
// /healthz.
func checkProbe(t *testing.T, where string, p *corev1.Probe, named map[string]int32, project bool) {
	t.Helper()
	switch {
	case p == nil:
		t.Errorf("%s: needs a readiness and a liveness probe", where)
	case p.HTTPGet != nil:
		if _, ok := named[p.HTTPGet.Port.String()]; !ok {
			t.Errorf("%s: probe on port %s, which the container does not name", where, p.HTTPGet.Port.String())
		}
		if project && p.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: probe path %s, want /healthz", where, p.HTTPGet.Path)
		}
	case p.TCPSocket != nil:
		if _, ok := named[p.TCPSocket.Port.String()]; !ok {
			t.Errorf("%s: probe on port %s, which the container does not name", where, p.TCPSocket.Port.String())
		}
	default:
		t.Errorf("%s: probe %+v is neither HTTP nor TCP", where, p)
	}
}

// checkServices: every Service selects a pod and reaches ports it names.
func checkServices(t *testing.T, services []corev1.Service, pods []podOf) {
	t.Helper()
	for _, s := range services {
		i := slices.IndexFunc(pods, func(p podOf) bool { return selects(s.Spec.Selector, p.labels) })
		if i < 0 {
			t.Errorf("Service %s selects no pod (%v)", s.Name, s.Spec.Selector)
			continue
		}
		for _, sp := range s.Spec.Ports {
			if !podHasPort(pods[i], sp.TargetPort.String()) {
				t.Errorf("Service %s: target port %s is not a port of %s", s.Name, sp.TargetPort.String(), pods[i].name)
			}
		}
	}
}

// selects reports whether a selector's labels are all among labels.
func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func podHasPort(p podOf, name string) bool {
	for _, c := range p.spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == name || strconv.Itoa(int(cp.ContainerPort)) == name {
				return true
			}
		}
	}
	return false
}

// checkPodMonitor: the overlay adds a PodMonitor (checked field by field:
// the operator's types are not k8s.io/api's) selecting every pod, each
// endpoint a port one of them names.
func checkPodMonitor(t *testing.T, objs []kubeObject, pods []podOf) {
	t.Helper()
	i := slices.IndexFunc(objs, func(o kubeObject) bool { return o.kind == "PodMonitor" })
	if i < 0 {
		t.Fatal("overlays/prometheus-operator builds no PodMonitor")
	}
	var pm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			PodTargetLabels     []string `json:"podTargetLabels"`
			PodMetricsEndpoints []struct {
				Port, Path, Interval string
			} `json:"podMetricsEndpoints"`
		} `json:"spec"`
	}
	strict(t, objs[i], &pm)
	if pm.APIVersion != "monitoring.coreos.com/v1" {
		t.Errorf("PodMonitor apiVersion %s, want monitoring.coreos.com/v1", pm.APIVersion)
	}
	for _, p := range pods {
		if !selects(pm.Spec.Selector.MatchLabels, p.labels) {
			t.Errorf("the PodMonitor does not select %s (labels %v)", p.name, p.labels)
		}
	}
	for _, ep := range pm.Spec.PodMetricsEndpoints {
		if !slices.ContainsFunc(pods, func(p podOf) bool { return podHasPort(p, ep.Port) }) || ep.Path != "/metrics" {
			t.Errorf("PodMonitor endpoint %+v: no pod names port %q, or the path is not /metrics", ep, ep.Port)
		}
	}
}

// checkDashboardConfigMap: the grafana overlay's ConfigMap carries the
// label Grafana's sidecar looks for and the dashboard as it is.
func checkDashboardConfigMap(t *testing.T, objs []kubeObject) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "grafana", "dashboards", "go-backpressure.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.kind != "ConfigMap" {
			continue
		}
		var c corev1.ConfigMap
		if strict(t, o, &c); c.Labels["grafana_dashboard"] == "" {
			continue
		}
		if c.Data["go-backpressure.json"] != string(want) || !json.Valid(want) {
			t.Errorf("ConfigMap %s does not hold deploy/grafana/dashboards/go-backpressure.json as it is", c.Name)
		}
		return
	}
	t.Error("overlays/grafana builds no ConfigMap labelled grafana_dashboard")
}

func intOrUnset(p *int32) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(int(*p))
}

// checkHAProxyContainer: HAProxy's container declares the ports its
// configuration listens on (the BP_HAPROXY_* addresses it sets), and its
// HTTP probes ask for the stats page the configuration serves.
func checkHAProxyContainer(t *testing.T, pods []podOf, cfg string) {
	t.Helper()
	for _, p := range pods {
		for _, c := range p.spec.Containers {
			if !strings.HasPrefix(c.Image, "haproxy:") {
				continue
			}
			for _, e := range c.Env {
				if !strings.Contains(cfg, "${"+e.Name+"-") {
					t.Errorf("%s: %s sets %s, which haproxy.cfg does not read", p.name, c.Name, e.Name)
				}
				port := strings.TrimPrefix(e.Value, ":")
				if strings.HasPrefix(e.Value, ":") && !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return strconv.Itoa(int(cp.ContainerPort)) == port }) {
					t.Errorf("%s: %s listens on %s (%s), a port the container does not declare", p.name, c.Name, e.Value, e.Name)
				}
			}
			for _, probe := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
				if probe != nil && probe.HTTPGet != nil && !strings.Contains(cfg, "stats uri "+probe.HTTPGet.Path+"\n") {
					t.Errorf("%s: %s probes %s, which haproxy.cfg does not serve (stats uri)", p.name, c.Name, probe.HTTPGet.Path)
				}
			}
			return
		}
	}
	t.Error("the base runs no HAProxy container")
}

// checkGRPCPort: bp-server's container declares its gRPC listener as a
// port named grpc whose number is the one --grpc-addr listens on, and the
// bp-server Service carries it, by name, on the same number.
func checkGRPCPort(t *testing.T, pods []podOf, services []corev1.Service) {
	t.Helper()
	var want int32
	for _, p := range pods {
		for _, c := range p.spec.Containers {
			if len(c.Command) != 1 || c.Command[0] != "bp-server" {
				continue
			}
			flag := addrPort(flagPairs(c.Args)["grpc-addr"])
			i := slices.IndexFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == "grpc" })
			if i < 0 || flag == "" || strconv.Itoa(int(c.Ports[i].ContainerPort)) != flag {
				t.Errorf("%s: --grpc-addr port %q, container ports %+v: want one named grpc on it", p.name, flag, c.Ports)
				continue
			}
			want = c.Ports[i].ContainerPort
		}
	}
	if want == 0 {
		t.Fatal("no bp-server container with a grpc port")
	}
	i := slices.IndexFunc(services, func(s corev1.Service) bool { return s.Name == "bp-server" })
	if i < 0 {
		t.Fatal("no Service bp-server")
	}
	ok := slices.ContainsFunc(services[i].Spec.Ports, func(sp corev1.ServicePort) bool {
		return sp.Name == "grpc" && sp.Port == want && sp.TargetPort.String() == "grpc"
	})
	if !ok {
		t.Errorf("Service bp-server ports %+v: want grpc, port %d, targetPort grpc", services[i].Spec.Ports, want)
	}
}
