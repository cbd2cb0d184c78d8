// Package operator tests remocal's operator as a cluster runs it: the chart
// in charts/remocal installed with a real helm (built by test/cluster) on
// the harness cluster, from images built from this checkout, and reached
// the way developers reach it: through the kube-apiserver, each with a
// kubeconfig of their own (client certificates signed by the cluster CA)
// and only the RBAC the chart ships.
//
// Cluster tests run with REMOCAL_CLUSTER=existing (after make cluster-up)
// or =up; see docs/cluster.md. Without it they skip and say so. The chart's
// own tests (lint, the plain manifests, the serving certificate) need only
// helm, which test/cluster builds into its cache on first use.
package operator

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/gobuild"
)

func TestMain(m *testing.M) {
	cluster.Main(m, uninstallShared, gobuild.Cleanup)
}

// version is the images' tag in these tests (as in test/e2e/kube): the
// operator and the agent it starts are built from this checkout.
const version = "e2e"

// apiService is the APIService the chart registers.
const apiService = "v1alpha1.operator.remocal.dev"

var images struct {
	once sync.Once
	err  error
}

// buildImages builds the operator and agent images from this checkout and
// imports them into the cluster, once per test binary.
func buildImages(t testing.TB) {
	t.Helper()
	images.once.Do(func() {
		start := time.Now()
		defer func() { t.Logf("images built and imported in %s", time.Since(start).Round(100*time.Millisecond)) }()
		dir, err := os.MkdirTemp("", "remocal-e2e-operator-images")
		if err != nil {
			images.err = err
			return
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		_, images.err = cluster.BuildImages(ctx, cluster.ImageOptions{
			OutDir: dir, Tag: version, Version: version, Only: []string{"agent", "operator", "inventory"},
		}, t.Logf)
	})
	if images.err != nil {
		t.Fatalf("building the images: %v", images.err)
	}
}

// chartDir is charts/remocal in this checkout.
func chartDir(t testing.TB) string {
	t.Helper()
	root, err := cluster.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "charts", "remocal")
}

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// install is one installation of the chart in a namespace of its own.
type install struct {
	c       *cluster.Cluster
	ns      string
	release string
	// uninstalled is set once helm uninstall succeeded.
	uninstalled bool
}

// installChart installs the chart with helm into a fresh namespace, with
// this checkout's images and the given values (a JSON document, which is
// YAML), and uninstalls it when the test ends, whatever happened. It
// returns before the operator is ready: see waitAvailable.
func installChart(t *testing.T, c *cluster.Cluster, valuesJSON string) *install {
	t.Helper()
	ctx := testContext(t, 3*time.Minute)
	dropShared()
	reapLeftovers(t, c)
	in := &install{c: c, ns: c.Namespace(t), release: "remocal"}
	values := filepath.Join(t.TempDir(), "values.json")
	if err := os.WriteFile(values, []byte(valuesJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	// Registered after the namespace's own cleanup, so it runs first: the
	// release's cluster-wide objects go before the namespace does.
	t.Cleanup(func() {
		if t.Failed() {
			in.dump(t)
		}
		in.uninstall(t)
	})
	start := time.Now()
	if _, err := c.Helm(ctx, "install", in.release, chartDir(t), "--namespace", in.ns,
		"--values", values,
		"--set", "image.tag="+version, "--set", "agent.image.tag="+version,
		// Imported, never pulled: the cluster cannot pull.
		"--set", "image.pullPolicy=Never"); err != nil {
		t.Fatal(err)
	}
	t.Logf("helm install in %s", time.Since(start).Round(100*time.Millisecond))
	return in
}

// uninstall runs helm uninstall (once) and checks that the release's
// cluster-wide objects are gone.
func (in *install) uninstall(t *testing.T) {
	t.Helper()
	if in.uninstalled {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if _, err := in.c.Helm(ctx, "uninstall", in.release, "--namespace", in.ns, "--wait", "--timeout=90s"); err != nil {
		t.Errorf("helm uninstall: %v", err)
		return
	}
	in.uninstalled = true
	t.Logf("helm uninstall --wait in %s", time.Since(start).Round(100*time.Millisecond))
	for _, kind := range []string{"apiservice/" + apiService, "clusterrole/remocal-user", "clusterrole/remocal-admin",
		"clusterrole/remocal-admin-extras", "clusterrole/remocal-operator", "clusterrolebinding/remocal-operator",
		"clusterrolebinding/remocal-operator:auth-delegator"} {
		out, err := in.c.Kubectl(ctx, "get", kind, "--ignore-not-found", "-o", "name")
		if err != nil {
			t.Errorf("after helm uninstall: %v", err)
		} else if strings.TrimSpace(out) != "" {
			t.Errorf("after helm uninstall, %s is still there", kind)
		}
	}
	out, err := in.c.Kubectl(ctx, "-n", "kube-system", "get", "rolebinding", "remocal-operator:auth-reader", "--ignore-not-found", "-o", "name")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("after helm uninstall, kube-system/rolebinding/remocal-operator:auth-reader: %q %v", out, err)
	}
}

// waitAvailable waits until the kube-apiserver reports the APIService
// Available: it reached the operator's Service over TLS with the chart's
// CA and got its discovery.
func (in *install) waitAvailable(t *testing.T) {
	t.Helper()
	ctx := testContext(t, 3*time.Minute)
	start := time.Now()
	defer func() { t.Logf("APIService Available after %s", time.Since(start).Round(100*time.Millisecond)) }()
	if _, err := in.c.Kubectl(ctx, "wait", "apiservice/"+apiService, "--for=condition=Available", "--timeout=150s"); err != nil {
		status, _ := in.c.Kubectl(ctx, "get", "apiservice", apiService, "-o", "jsonpath={.status.conditions}")
		t.Fatalf("the operator's API did not become available: %v\nAPIService conditions: %s", err, status)
	}
}

// dump logs what a failed test needs: the operator's pods, their logs,
// the APIService's state.
func (in *install) dump(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"get", "apiservice", apiService, "-o", "yaml"},
		{"-n", in.ns, "get", "deploy,rs,pods,svc,endpointslices,jobs,secrets", "-o", "wide"},
		{"-n", in.ns, "describe", "pods", "-l", "app.kubernetes.io/name=remocal-operator"},
		{"-n", in.ns, "logs", "-l", "app.kubernetes.io/name=remocal-operator", "--all-containers", "--prefix", "--tail=80"},
		{"-n", in.ns, "get", "events", "--sort-by=.lastTimestamp"},
	} {
		out, err := in.c.Kubectl(ctx, args...)
		t.Logf("kubectl %s:\n%s%v", strings.Join(args, " "), out, errText(err))
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// reapLeftovers removes the cluster-wide objects of an earlier run whose
// namespace is gone (a test binary killed before its cleanup), which would
// make helm refuse to install. An installation whose namespace still
// exists is somebody's: the test fails saying so instead of removing it.
func reapLeftovers(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	// The namespace of the operator the APIService leads to, installed
	// with helm or with the plain manifests alike.
	owner, err := c.Kubectl(ctx, "get", "apiservice", apiService, "--ignore-not-found", "-o", "jsonpath={.spec.service.namespace}")
	if err != nil {
		t.Fatal(err)
	}
	owner = strings.TrimSpace(owner)
	if owner != "" {
		phase, err := c.Kubectl(ctx, "get", "namespace", owner, "--ignore-not-found", "-o", "jsonpath={.status.phase}")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(phase) == "Active" {
			t.Fatalf("the operator is already installed in namespace %s: uninstall it first (helm uninstall -n %s, or kubectl delete -f deploy/remocal-operator.yaml)", owner, owner)
		}
	}
	sel := "app.kubernetes.io/name=remocal-operator"
	for _, args := range [][]string{
		{"delete", "apiservice,clusterrole,clusterrolebinding", "-l", sel, "--ignore-not-found"},
		{"-n", "kube-system", "delete", "rolebinding", "-l", sel, "--ignore-not-found"},
	} {
		if out, err := c.Kubectl(ctx, args...); err != nil {
			t.Fatal(err)
		} else if out = strings.TrimSpace(out); out != "" && !strings.HasPrefix(out, "No resources found") {
			t.Logf("removed leftovers of an earlier run: %s", strings.TrimSpace(out))
		}
	}
}
