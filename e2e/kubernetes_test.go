package e2e

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kubeDir is deploy/kubernetes, seen from this package.
var kubeDir = filepath.Join(repoRoot, "deploy", "kubernetes")

// kubeObject is one object a kustomization builds, as JSON, with its kind.
type kubeObject struct {
	kind, name string
	json       []byte
}

// kustomizeBuild builds the kustomization in dir (under deploy/kubernetes)
// from the files on disk, as kubectl kustomize does; none restricts loading
// (the grafana overlay reads the dashboard from deploy/grafana).
func kustomizeBuild(t *testing.T, dir string, none bool) []kubeObject {
	t.Helper()
	opts := krusty.MakeDefaultOptions()
	if none {
		opts.LoadRestrictions = types.LoadRestrictionsNone
	}
	abs, err := filepath.Abs(filepath.Join(kubeDir, dir))
	if err != nil {
		t.Fatal(err)
	}
	m, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []kubeObject
	for _, r := range m.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %s/%s: %v", dir, r.GetKind(), r.GetName(), err)
		}
		out = append(out, kubeObject{kind: r.GetKind(), name: r.GetName(), json: b})
	}
	return out
}

// strict decodes JSON into v, refusing fields v's type does not have.
func strict(t *testing.T, o kubeObject, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(o.json))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Errorf("%s %s does not decode strictly into the Kubernetes API types: %v", o.kind, o.name, err)
	}
}

// TestKubernetes: the base and both overlays build; every object decodes
// strictly into k8s.io/api's types (the PodMonitor, whose types are the
// operator's, as a checked map); every container's image is the project's
// (with its binaries) or pinned, its flags are its binary's, its probes'
// ports and paths exist; bp-server's gRPC port is declared and served;
// the Job's instances agree with its completions.
func TestKubernetes(t *testing.T) {
	base := kustomizeBuild(t, "base", false)
	kinds := map[string]int{}
	var pods []podOf
	var services []corev1.Service
	var haproxyCfg string
	for _, o := range base {
		kinds[o.kind]++
		switch o.kind {
		case "Deployment":
			var d appsv1.Deployment
			strict(t, o, &d)
			pods = append(pods, podOf{name: "Deployment " + d.Name, spec: d.Spec.Template.Spec, annotations: d.Spec.Template.Annotations, labels: d.Spec.Template.Labels})
		case "Job":
			var j batchv1.Job
			strict(t, o, &j)
			checkJob(t, j)
			pods = append(pods, podOf{name: "Job " + j.Name, spec: j.Spec.Template.Spec, annotations: j.Spec.Template.Annotations, labels: j.Spec.Template.Labels})
		case "Service":
			var s corev1.Service
			strict(t, o, &s)
			services = append(services, s)
		case "ConfigMap":
			var c corev1.ConfigMap
			strict(t, o, &c)
			checkHAProxyConfig(t, c)
			haproxyCfg = c.Data["haproxy.cfg"]
		default:
			t.Errorf("unexpected %s %s in the base", o.kind, o.name)
		}
	}
	if kinds["Deployment"] != 2 || kinds["Job"] != 1 || kinds["Service"] != 2 || kinds["ConfigMap"] != 1 {
		t.Errorf("base builds %v, want 2 Deployments, 1 Job, 2 Services, 1 ConfigMap", kinds)
	}
	help := map[string]map[string]bool{}
	for _, p := range pods {
		checkPod(t, p, help)
	}
	checkServices(t, services, pods)
	checkGRPCPort(t, pods, services)
	checkHAProxyContainer(t, pods, haproxyCfg)
	checkPodMonitor(t, kustomizeBuild(t, "overlays/prometheus-operator", false), pods)
	checkDashboardConfigMap(t, kustomizeBuild(t, "overlays/grafana", true))
	checkFleet50(t, kustomizeBuild(t, "overlays/fleet-50", false), help)
}

// checkFleet50: docs/FLEET.md's overlay makes a fleet of 50 through an
// Ingress to bp-server's HTTP port.
func checkFleet50(t *testing.T, objs []kubeObject, help map[string]map[string]bool) {
	t.Helper()
	var ing *networkingv1.Ingress
	target := ""
	for _, o := range objs {
		switch o.kind {
		case "Job":
			var j batchv1.Job
			strict(t, o, &j)
			checkJob(t, j)
			if *j.Spec.Completions != 50 {
				t.Errorf("overlays/fleet-50: %d completions", *j.Spec.Completions)
			}
			target = flagPairs(j.Spec.Template.Spec.Containers[0].Args)["target"]
			checkPod(t, podOf{name: "fleet-50 Job", spec: j.Spec.Template.Spec, annotations: j.Spec.Template.Annotations, labels: j.Spec.Template.Labels}, help)
		case "Ingress":
			ing = &networkingv1.Ingress{}
			strict(t, o, ing)
		}
	}
	if ing == nil || len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].HTTP == nil {
		t.Fatal("overlays/fleet-50 builds no Ingress with one HTTP rule")
	}
	b := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service
	if b == nil || b.Name != "bp-server" || b.Port.Name != "http" {
		t.Errorf("the Ingress leads to %+v, want bp-server's http port", b)
	}
	if want := "ws://" + ing.Spec.Rules[0].Host + ing.Spec.Rules[0].HTTP.Paths[0].Path; target != want {
		t.Errorf("the fleet's --target %q, want the Ingress's %q", target, want)
	}
}

// podOf is a pod template the base runs.
type podOf struct {
	name                string
	spec                corev1.PodSpec
	annotations, labels map[string]string
}
