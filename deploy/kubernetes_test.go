package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"
)

// kustomizations are the directories `kubectl apply -k` takes.
var kustomizations = []string{"base", "overlays/example"}

// TestManifestsParse reads every YAML file of the Kubernetes manifests,
// all documents of each, as YAML, and checks each names its kind.
func TestManifestsParse(t *testing.T) {
	n := 0
	for _, dir := range []string{"base", "overlays"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			dec := yaml.NewDecoder(bytes.NewReader(b))
			for i := 0; ; i++ {
				var doc map[string]any
				if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					return fmt.Errorf("%s, document %d: %w", path, i+1, err)
				}
				if doc == nil {
					continue
				}
				if doc["apiVersion"] == nil || doc["kind"] == nil {
					t.Errorf("%s, document %d: no apiVersion or kind", path, i+1)
				}
				n++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n < 10 {
		t.Errorf("only %d manifests found", n)
	}
}

// rendered is the output of one kustomization, decoded strictly into the
// Kubernetes API types: a misspelt or misplaced field fails to decode.
type rendered struct {
	deployments map[string]*appsv1.Deployment
	jobs        map[string]*batchv1.Job
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	hpas        map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs        map[string]*policyv1.PodDisruptionBudget
}

// build runs kustomize on dir as `kubectl kustomize` would.
func build(t *testing.T, dir string) *rendered {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	r := &rendered{
		deployments: map[string]*appsv1.Deployment{}, jobs: map[string]*batchv1.Job{},
		services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{},
		hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
	}
	for _, res := range m.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		name := res.GetName()
		var target any
		switch res.GetKind() {
		case "Deployment":
			target = put(r.deployments, name)
		case "Job":
			target = put(r.jobs, name)
		case "Service":
			target = put(r.services, name)
		case "ConfigMap":
			target = put(r.configMaps, name)
		case "HorizontalPodAutoscaler":
			target = put(r.hpas, name)
		case "PodDisruptionBudget":
			target = put(r.pdbs, name)
		case "Namespace":
			target = &corev1.Namespace{}
		default:
			t.Errorf("%s: %s %s: a kind this test does not check", dir, res.GetKind(), name)
			continue
		}
		if err := sigsyaml.UnmarshalStrict(y, target); err != nil {
			t.Errorf("%s: %s %s: %v", dir, res.GetKind(), name, err)
		}
	}
	return r
}

func put[T any](m map[string]*T, name string) *T {
	v := new(T)
	m[name] = v
	return v
}

func TestKustomizeWorkloads(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			r := build(t, dir)
			for _, name := range []string{"dealcast-api", "dealcast-worker"} {
				if r.deployments[name] == nil {
					t.Fatalf("no Deployment %s", name)
				}
			}
			if r.jobs["dealcast-migrate"] == nil || r.services["dealcast-api"] == nil || r.hpas["dealcast-api"] == nil ||
				r.pdbs["dealcast-api"] == nil || r.pdbs["dealcast-worker"] == nil || r.configMaps["dealcast-config"] == nil {
				t.Fatalf("missing objects: jobs %v services %v hpas %v pdbs %v configmaps %v",
					sortedKeys(r.jobs), sortedKeys(r.services), sortedKeys(r.hpas), sortedKeys(r.pdbs), sortedKeys(r.configMaps))
			}
			cmds := binaryCommands(t)
			pods := map[string]corev1.PodTemplateSpec{
				"dealcast-api":     r.deployments["dealcast-api"].Spec.Template,
				"dealcast-worker":  r.deployments["dealcast-worker"].Spec.Template,
				"dealcast-migrate": r.jobs["dealcast-migrate"].Spec.Template,
			}
			wantCmd := map[string]string{"dealcast-api": "api", "dealcast-worker": "worker", "dealcast-migrate": "migrate"}
			for name, pod := range pods {
				if len(pod.Spec.Containers) != 1 {
					t.Fatalf("%s: %d containers, want 1", name, len(pod.Spec.Containers))
				}
				c := pod.Spec.Containers[0]
				if len(c.Args) != 1 || c.Args[0] != wantCmd[name] || !slices.Contains(cmds, c.Args[0]) {
					t.Errorf("%s: args %v, want [%s], a command of the binary", name, c.Args, wantCmd[name])
				}
				if len(c.Command) != 0 {
					t.Errorf("%s: command %v replaces the image's entrypoint", name, c.Command)
				}
				checkHardening(t, name, pod.Spec, c)
				checkResources(t, name, c)
				checkMounts(t, name, pod.Spec, c)
			}
			if d := r.deployments["dealcast-api"]; !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
				t.Errorf("dealcast-api: selector %v does not select its pods %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
			}
			if d := r.deployments["dealcast-worker"]; !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
				t.Errorf("dealcast-worker: selector %v does not select its pods %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
			}
		})
	}
}

// checkHardening: non-root, read-only root file system, no privilege
// escalation, no capabilities, no service account token.
func checkHardening(t *testing.T, name string, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	nonRoot := pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot
	if sc := c.SecurityContext; sc != nil && sc.RunAsNonRoot != nil {
		nonRoot = *sc.RunAsNonRoot
	}
	if !nonRoot {
		t.Errorf("%s: may run as root", name)
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser == 0 {
		t.Errorf("%s: no non-zero runAsUser", name)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: root file system not read-only", name)
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: privilege escalation not disabled", name)
	}
	if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: capabilities not dropped", name)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("%s: mounts a service account token it has no use for", name)
	}
}

func checkResources(t *testing.T, name string, c corev1.Container) {
	t.Helper()
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := c.Resources.Requests[res]; !ok || q.IsZero() {
			t.Errorf("%s: no %s request", name, res)
		}
		if q, ok := c.Resources.Limits[res]; !ok || q.IsZero() {
			t.Errorf("%s: no %s limit", name, res)
		} else if q.Cmp(c.Resources.Requests[res]) < 0 {
			t.Errorf("%s: %s limit below its request", name, res)
		}
	}
}

func checkMounts(t *testing.T, name string, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) {
			t.Errorf("%s: mounts volume %s, which the pod does not have", name, m.Name)
		}
	}
}

// selects reports whether a label selector's matchLabels match labels.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestKustomizeProbes checks the port and probes of the api and the worker,
// both of which serve /healthz and /readyz on DEALCAST_HTTP_ADDR.
func TestKustomizeProbes(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			r := build(t, dir)
			if addr := r.configMaps["dealcast-config"].Data["DEALCAST_HTTP_ADDR"]; addr != ":8080" {
				t.Errorf("DEALCAST_HTTP_ADDR %q: the processes would not listen on their container port 8080", addr)
			}
			for _, name := range []string{"dealcast-api", "dealcast-worker"} {
				d := r.deployments[name]
				if d == nil {
					t.Fatalf("no Deployment %s", name)
				}
				c := d.Spec.Template.Spec.Containers[0]
				if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8080 || c.Ports[0].Name == "" {
					t.Fatalf("%s: ports %+v, want one named port 8080", name, c.Ports)
				}
				probe := func(kind string, p *corev1.Probe, path string) {
					if p == nil || p.HTTPGet == nil {
						t.Errorf("%s: no HTTP %s probe", name, kind)
						return
					}
					if p.HTTPGet.Path != path || portNumber(c, p.HTTPGet.Port) != 8080 {
						t.Errorf("%s: %s probe %s on port %s, want %s on 8080", name, kind, p.HTTPGet.Path, p.HTTPGet.Port.String(), path)
					}
				}
				probe("readiness", c.ReadinessProbe, "/readyz")
				// Liveness must not depend on the database or Temporal: an
				// outage would restart every pod and fix nothing.
				probe("liveness", c.LivenessProbe, "/healthz")
				if c.StartupProbe != nil {
					probe("startup", c.StartupProbe, "/healthz")
				}
			}
		})
	}
}

// TestKustomizeAPIService checks the Service, HPA and the PDBs.
func TestKustomizeAPIService(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			r := build(t, dir)
			d := r.deployments["dealcast-api"]
			if d == nil || r.deployments["dealcast-worker"] == nil {
				t.Fatal("no dealcast-api or dealcast-worker Deployment")
			}
			c := d.Spec.Template.Spec.Containers[0]
			svc := r.services["dealcast-api"]
			if svc == nil {
				t.Fatal("no dealcast-api Service")
			}
			if !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
				t.Errorf("Service selector %v does not select the API pods", svc.Spec.Selector)
			}
			if selects(svc.Spec.Selector, r.deployments["dealcast-worker"].Spec.Template.Labels) {
				t.Errorf("Service selector %v also selects worker pods", svc.Spec.Selector)
			}
			if len(svc.Spec.Ports) != 1 || portNumber(c, svc.Spec.Ports[0].TargetPort) != 8080 {
				t.Errorf("Service ports %+v do not reach container port 8080", svc.Spec.Ports)
			}

			hpa := r.hpas["dealcast-api"]
			if hpa == nil {
				t.Fatal("no dealcast-api HorizontalPodAutoscaler")
			}
			if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != "dealcast-api" {
				t.Errorf("HPA scales %s %s, not the API Deployment", ref.Kind, ref.Name)
			}
			if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 || hpa.Spec.MaxReplicas < *hpa.Spec.MinReplicas {
				t.Errorf("HPA replicas %v..%d: want at least 2, max above min", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
			}
			for name, dep := range map[string]*appsv1.Deployment{"dealcast-api": d, "dealcast-worker": r.deployments["dealcast-worker"]} {
				pdb := r.pdbs[name]
				if pdb == nil || pdb.Spec.Selector == nil || !selects(pdb.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) {
					t.Errorf("%s: no PodDisruptionBudget selecting its pods", name)
					continue
				}
				// A budget that allows no eviction blocks every node drain.
				if ma := pdb.Spec.MinAvailable; ma != nil && ma.Type == intstr.Int && *dep.Spec.Replicas <= ma.IntVal {
					t.Errorf("%s: minAvailable %d with %d replicas blocks node drains", name, ma.IntVal, *dep.Spec.Replicas)
				}
			}
		})
	}
}

// portNumber resolves a probe's or Service's port, by number or by name.
func portNumber(c corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return -1
}

// TestKustomizeSettings checks every environment variable the workloads
// get (env entries and ConfigMap keys through envFrom) against the
// binary's settings, and every Secret reference.
func TestKustomizeSettings(t *testing.T) {
	s := binarySettings(t)
	readme := string(readFile(t, "deploy/README.md"))
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			r := build(t, dir)
			for name, cm := range r.configMaps {
				for key := range cm.Data {
					if !s.has(key) {
						t.Errorf("ConfigMap %s: %s is not a setting of the binary", name, key)
					}
				}
			}
			pods := map[string]corev1.PodSpec{
				"dealcast-api":     r.deployments["dealcast-api"].Spec.Template.Spec,
				"dealcast-worker":  r.deployments["dealcast-worker"].Spec.Template.Spec,
				"dealcast-migrate": r.jobs["dealcast-migrate"].Spec.Template.Spec,
			}
			for name, pod := range pods {
				c := pod.Containers[0]
				got := map[string]bool{}
				for _, e := range c.Env {
					got[e.Name] = true
					if !s.has(e.Name) {
						t.Errorf("%s: %s is not a setting of the binary", name, e.Name)
					}
					if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
						ref := e.ValueFrom.SecretKeyRef
						if ref.Name == "" || ref.Key == "" {
							t.Errorf("%s: %s: secretKeyRef without a name or key", name, e.Name)
						} else if !strings.Contains(readme, "`"+ref.Key+"`") {
							t.Errorf("%s: %s: Secret key %s is not documented in deploy/README.md", name, e.Name, ref.Key)
						}
					}
				}
				for _, ef := range c.EnvFrom {
					if ef.ConfigMapRef == nil {
						t.Errorf("%s: envFrom other than a ConfigMap", name)
						continue
					}
					cm := r.configMaps[ef.ConfigMapRef.Name]
					if cm == nil {
						t.Errorf("%s: envFrom ConfigMap %s, which is not in the build", name, ef.ConfigMapRef.Name)
						continue
					}
					for key := range cm.Data {
						got[key] = true
					}
				}
				want := []string{"DATABASE_URL"}
				if name != "dealcast-migrate" {
					want = append(want, "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "DEALCAST_SECRET_KEY")
				}
				for _, k := range want {
					if !got[k] {
						t.Errorf("%s: %s is not set", name, k)
					}
				}
				if name == "dealcast-api" && !got["DEALCAST_JWT_SECRET"] && !got["DEALCAST_JWKS_URL"] {
					t.Errorf("%s: neither DEALCAST_JWT_SECRET nor DEALCAST_JWKS_URL: the API cannot verify tokens", name)
				}
			}
			// Production refuses private webhook targets.
			if v := r.configMaps["dealcast-config"].Data["DEALCAST_WEBHOOK_ALLOW_PRIVATE"]; v != "false" {
				t.Errorf("DEALCAST_WEBHOOK_ALLOW_PRIVATE = %q in a cluster", v)
			}
		})
	}
}

// TestKustomizeHeapLimit checks that the long-running workloads bound the
// Go heap below their container's memory limit: the binary raises the
// collector's target, so without GOMEMLIMIT the heap could outgrow it.
func TestKustomizeHeapLimit(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			r := build(t, dir)
			for _, name := range []string{"dealcast-api", "dealcast-worker"} {
				c := r.deployments[name].Spec.Template.Spec.Containers[0]
				limit, ok := c.Resources.Limits[corev1.ResourceMemory]
				if !ok {
					t.Errorf("%s: no memory limit", name)
					continue
				}
				var heap string
				for _, e := range c.Env {
					if e.Name == "GOMEMLIMIT" {
						heap = e.Value
					}
				}
				// The runtime writes binary units as MiB and GiB; Kubernetes as Mi and Gi.
				q, err := resource.ParseQuantity(strings.TrimSuffix(heap, "B"))
				if err != nil {
					t.Errorf("%s: GOMEMLIMIT %q: %v", name, heap, err)
					continue
				}
				if q.Cmp(limit) >= 0 || q.Value() < limit.Value()/2 {
					t.Errorf("%s: GOMEMLIMIT %s, want between half and all of the memory limit %s", name, heap, limit.String())
				}
			}
		})
	}
}
