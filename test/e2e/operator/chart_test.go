package operator

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	remocaloperator "github.com/remocal/remocal/operator"
	"github.com/remocal/remocal/test/cluster"
)

// These tests need helm but no cluster. test/cluster builds helm into its
// cache the first time (a few minutes), so -short skips them.

func helmBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: these tests build helm on first use (minutes); run them without -short")
	}
	bin, err := cluster.Helm(testContext(t, 10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// helmTemplate renders the chart in namespace ns with extra helm flags,
// without a cluster.
func helmTemplate(t *testing.T, ns string, flags ...string) []*unstructured.Unstructured {
	t.Helper()
	args := append([]string{"template", "remocal", chartDir(t), "--namespace", ns}, flags...)
	cmd := exec.CommandContext(testContext(t, time.Minute), helmBin(t), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatalf("helm template printed something that is not YAML: %v", err)
		}
		if m != nil {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

// find returns the one object of kind and name, converted into out when
// out is not nil.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string, out any) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			if out != nil {
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
					t.Fatalf("%s %s: %v", kind, name, err)
				}
			}
			return o
		}
	}
	t.Fatalf("the chart renders no %s %s", kind, name)
	return nil
}

func TestChartLints(t *testing.T) {
	out, err := exec.CommandContext(testContext(t, time.Minute), helmBin(t), "lint", "--strict", chartDir(t)).CombinedOutput()
	if err != nil {
		t.Fatalf("helm lint --strict: %v\n%s", err, out)
	}
}

// TestManifestsAreUpToDate fails when deploy/remocal-operator.yaml is not
// what the chart renders: run make manifests and commit the result.
func TestManifestsAreUpToDate(t *testing.T) {
	helmBin(t)
	want, err := cluster.Manifests(testContext(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	root, _ := cluster.ModuleRoot()
	got, err := os.ReadFile(filepath.Join(root, cluster.ManifestsPath))
	if err != nil {
		t.Fatalf("%v: run make manifests", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: the chart renders something else. Run make manifests and commit the result.", cluster.ManifestsPath)
	}
}

// TestChartAppVersionIsRemocals: the chart's default images are those of
// the remocal version an unreleased build reports.
func TestChartAppVersionIsRemocals(t *testing.T) {
	root, err := cluster.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	main, err := os.ReadFile(filepath.Join(root, "cmd", "remocal", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	bin := regexp.MustCompile(`(?m)^var version = "([^"]+)"$`).FindSubmatch(main)
	if bin == nil {
		t.Fatal("var version in cmd/remocal/main.go not found")
	}
	if app := appVersion(t); app != string(bin[1]) {
		t.Fatalf("Chart.yaml's appVersion is %s but cmd/remocal is version %s: keep them together", app, bin[1])
	}
}

// appVersion is the chart's appVersion: the default tag of its images.
func appVersion(t *testing.T) string {
	t.Helper()
	chart, err := os.ReadFile(filepath.Join(chartDir(t), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	app := regexp.MustCompile(`(?m)^appVersion: "([^"]+)"$`).FindSubmatch(chart)
	if app == nil {
		t.Fatal(`no appVersion: "..." line in Chart.yaml`)
	}
	return string(app[1])
}

// TestChartServingCertificate: the certificate the chart makes is one the
// kube-apiserver accepts for the operator's Service (signed by the
// APIService's caBundle, for the Service's DNS name, for serving), and
// the Deployment mounts it where its flags say.
func TestChartServingCertificate(t *testing.T) {
	const ns = "certs"
	objs := helmTemplate(t, ns)
	var secret corev1.Secret
	find(t, objs, "Secret", "remocal-operator-tls", &secret)
	api := find(t, objs, "APIService", apiService, nil)
	caBundle, _, _ := unstructured.NestedString(api.Object, "spec", "caBundle")
	svcName, _, _ := unstructured.NestedString(api.Object, "spec", "service", "name")
	svcNS, _, _ := unstructured.NestedString(api.Object, "spec", "service", "namespace")
	// JSON numbers decode as float64.
	svcPort, _, _ := unstructured.NestedFieldNoCopy(api.Object, "spec", "service", "port")
	caPEM, err := base64.StdEncoding.DecodeString(caBundle)
	if err != nil {
		t.Fatalf("caBundle: %v", err)
	}
	if !bytes.Equal(caPEM, secret.Data["ca.crt"]) {
		t.Fatal("the APIService's caBundle is not the Secret's ca.crt")
	}
	pair, err := tls.X509KeyPair(secret.Data["tls.crt"], secret.Data["tls.key"])
	if err != nil {
		t.Fatalf("tls.crt and tls.key: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("caBundle holds no certificate")
	}
	host := svcName + "." + svcNS + ".svc" // the name the aggregator dials
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("the serving certificate does not verify for %s: %v", host, err)
	}

	var svc corev1.Service
	find(t, objs, "Service", svcName, &svc)
	if svc.Namespace != ns || len(svc.Spec.Ports) != 1 || fmt.Sprint(svc.Spec.Ports[0].Port) != fmt.Sprint(svcPort) || svc.Spec.Ports[0].TargetPort.String() != "https" {
		t.Fatalf("Service %s/%s does not serve port %v from the operator's https port: %+v", svc.Namespace, svc.Name, svcPort, svc.Spec.Ports)
	}
	var dep appsv1.Deployment
	find(t, objs, "Deployment", "remocal-operator", &dep)
	pod := dep.Spec.Template.Spec
	ctr := pod.Containers[0]
	for _, want := range []string{"--secure-port=8443", "--tls-cert-file=/etc/remocal/tls/tls.crt", "--tls-private-key-file=/etc/remocal/tls/tls.key", "--namespace=$(POD_NAMESPACE)",
		"--agent-image=" + cluster.AgentImageRepo + ":" + appVersion(t), "--session-ttl=5m", "--agent-ttl=10m"} {
		if !slices.Contains(ctr.Args, want) {
			t.Errorf("the operator's args %q lack %s", ctr.Args, want)
		}
	}
	if len(ctr.Ports) != 2 || ctr.Ports[0].Name != "https" || ctr.Ports[0].ContainerPort != 8443 ||
		ctr.Ports[1].Name != "metrics" || ctr.Ports[1].ContainerPort != 9090 || !slices.Contains(ctr.Args, "--metrics-bind-address=:9090") {
		t.Errorf("container ports %+v, args %q: want https 8443 and metrics 9090", ctr.Ports, ctr.Args)
	}
	if pod.Volumes[0].Secret == nil || pod.Volumes[0].Secret.SecretName != secret.Name || ctr.VolumeMounts[0].MountPath != "/etc/remocal/tls" {
		t.Errorf("the operator does not mount Secret %s at /etc/remocal/tls: %+v %+v", secret.Name, pod.Volumes, ctr.VolumeMounts)
	}
	sc := ctr.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("the operator's container is not locked down: %+v, pod %+v", sc, pod.SecurityContext)
	}
}

// TestChartOwnCertificate: with tls.generate=false the chart makes no
// Secret and trusts the CA it is given.
func TestChartOwnCertificate(t *testing.T) {
	ca := base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	objs := helmTemplate(t, "own", "--set", "tls.generate=false", "--set", "tls.secretName=mine", "--set", "tls.caBundle="+ca)
	for _, o := range objs {
		if o.GetKind() == "Secret" {
			t.Fatalf("tls.generate=false still renders Secret %s", o.GetName())
		}
	}
	api := find(t, objs, "APIService", apiService, nil)
	if got, _, _ := unstructured.NestedString(api.Object, "spec", "caBundle"); got != ca {
		t.Fatalf("caBundle %q, want the one given", got)
	}
	var dep appsv1.Deployment
	find(t, objs, "Deployment", "remocal-operator", &dep)
	if s := dep.Spec.Template.Spec.Volumes[0].Secret; s == nil || s.SecretName != "mine" {
		t.Fatalf("the operator mounts %+v, want Secret mine", dep.Spec.Template.Spec.Volumes[0])
	}
}

// TestChartOperatorRBACIsLeast: cluster-wide the operator only reads (and
// records events and its queue splits in the consumers' status); it
// writes Jobs, Secrets and Leases only in its own namespace, and workloads
// only in the namespaces listed for queue splitting.
func TestChartOperatorRBACIsLeast(t *testing.T) {
	const ns = "rbac"
	objs := helmTemplate(t, ns, "--set", "queueSplitting.namespaces[0].name=shop", "--set", "queueSplitting.namespaces[0].secrets={redis-auth}")
	var cr rbacv1.ClusterRole
	find(t, objs, "ClusterRole", "remocal-operator", &cr)
	for _, r := range cr.Rules {
		if slices.Equal(r.Resources, []string{"events"}) {
			continue
		}
		if slices.Equal(r.Resources, []string{"remocalqueueconsumers/status"}) && slices.Equal(r.Verbs, []string{"get", "update"}) {
			continue
		}
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("the operator's ClusterRole grants %s on %v cluster-wide", v, r.Resources)
			}
		}
	}
	var role rbacv1.Role
	find(t, objs, "Role", "remocal-operator", &role)
	if role.Namespace != ns {
		t.Errorf("the operator's Role is in %q, want the release's namespace %q", role.Namespace, ns)
	}
	for _, want := range []string{"jobs", "secrets", "leases", "configmaps"} {
		if !slices.ContainsFunc(role.Rules, func(r rbacv1.PolicyRule) bool { return slices.Contains(r.Resources, want) }) {
			t.Errorf("the operator's Role does not cover %s", want)
		}
	}
	// ConfigMaps: only the usage report's is read or written.
	for _, r := range role.Rules {
		if slices.Contains(r.Resources, "configmaps") && !slices.Equal(r.Verbs, []string{"create"}) &&
			!slices.Equal(r.ResourceNames, []string{remocaloperator.UsageConfigMap}) {
			t.Errorf("the operator's Role grants %v on configmaps %v, want only %s", r.Verbs, r.ResourceNames, remocaloperator.UsageConfigMap)
		}
	}
	// Queue splitting: in the listed namespace only, the workloads' env
	// and the named Secret, nothing else.
	var qrole rbacv1.Role
	find(t, objs, "Role", "remocal-operator-queue-splitting", &qrole)
	if qrole.Namespace != "shop" {
		t.Errorf("the queue-splitting Role is in %q, want shop", qrole.Namespace)
	}
	for _, r := range qrole.Rules {
		switch {
		case slices.Equal(r.Resources, []string{"deployments", "statefulsets"}) && slices.Equal(r.Verbs, []string{"get", "update"}):
		case slices.Equal(r.Resources, []string{"secrets"}) && slices.Equal(r.Verbs, []string{"get"}) && slices.Equal(r.ResourceNames, []string{"redis-auth"}):
		default:
			t.Errorf("the queue-splitting Role grants %v on %v %v", r.Verbs, r.Resources, r.ResourceNames)
		}
	}
	var delegator rbacv1.ClusterRoleBinding
	find(t, objs, "ClusterRoleBinding", "remocal-operator:auth-delegator", &delegator)
	if delegator.RoleRef.Name != "system:auth-delegator" {
		t.Errorf("auth-delegator binding refers to %s", delegator.RoleRef.Name)
	}
	var reader rbacv1.RoleBinding
	find(t, objs, "RoleBinding", "remocal-operator:auth-reader", &reader)
	if reader.Namespace != "kube-system" || reader.RoleRef.Name != "extension-apiserver-authentication-reader" {
		t.Errorf("auth-reader binding: %s/%s -> %s", reader.Namespace, reader.Name, reader.RoleRef.Name)
	}
}
