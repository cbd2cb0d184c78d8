package targets

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/syncbuf"
)

// workloads is one of each kind: a Deployment of 2 pods whose pods carry a
// known sidecar, its Service, a bare pod, a running Job, and a CronJob that
// has not run.
const workloads = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: app, image: ` + cluster.ToolboxImage + `, imagePullPolicy: Never, args: [serve]}
      - {name: istio-proxy, image: ` + cluster.ToolboxImage + `, imagePullPolicy: Never}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: solo}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: main, image: ` + cluster.ToolboxImage + `, imagePullPolicy: Never}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers: [{name: worker, image: ` + cluster.ToolboxImage + `, imagePullPolicy: Never}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: report, image: ` + cluster.ToolboxImage + `, imagePullPolicy: Never}]
`

// seen is what the tests compare of a target; generated names (the
// ReplicaSet's, its pods') are cut to their workload's.
type seen struct {
	Ref        string
	Ready      bool
	Status     string
	Containers []string
}

func summary(ts []daemon.Target, ns string) []seen {
	var out []seen
	for _, t := range ts {
		if t.Namespace != ns {
			continue
		}
		ref := t.Ref
		if strings.HasPrefix(ref, "replicaset/web-") {
			ref = "replicaset/web-*"
		} else if strings.HasPrefix(ref, "pod/web-") {
			ref = "pod/web-*"
		}
		out = append(out, seen{ref, t.Ready, t.Status, t.Containers})
	}
	return out
}

// settled is the namespace once everything runs.
func settled(webPods int) []seen {
	web := fmt.Sprintf("%d/%d ready", webPods, webPods)
	out := []seen{
		{"cronjob/nightly", false, "never run (0 3 * * *)", []string{"report"}},
		{"deployment/web", true, web, []string{"app"}},
		{"job/batch", true, "1/1 ready", []string{"worker"}},
		{"pod/batch-*", true, "Running", []string{"worker"}},
		{"pod/solo", true, "Running", []string{"main"}},
	}
	for range webPods {
		out = append(out, seen{"pod/web-*", true, "Running", []string{"app"}})
	}
	return append(out,
		seen{"replicaset/web-*", true, web, []string{"app"}},
		seen{"service/web", true, fmt.Sprintf("%d/%d pods ready", webPods, webPods), []string{"app"}})
}

// cutJobPods also cuts the Job's pod name, generated like the others.
func cutJobPods(s []seen) []seen {
	for i := range s {
		if strings.HasPrefix(s[i].Ref, "pod/batch-") {
			s[i].Ref = "pod/batch-*"
		}
	}
	return s
}

func loadEnv(t *testing.T, kubeconfig string) *kube.Env {
	t.Helper()
	env, err := kube.Load(kube.Flags{Kubeconfig: kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// waitTargets waits for notifications until want holds for the targets
// the provider lists in ns, and returns how many notifications concerned
// ns (or all namespaces) meanwhile.
func waitTargets(t *testing.T, k *Kube, ns string, timeout time.Duration, want func([]seen) error) int {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	notified := 0
	for {
		err := want(cutJobPods(summary(k.Targets(), ns)))
		if err == nil {
			return notified
		}
		select {
		case c, ok := <-k.Changed():
			if !ok {
				t.Fatal("Changed closed before the provider was")
			}
			if c.Provider != kube.Provider {
				t.Fatalf("notification from provider %q", c.Provider)
			}
			if c.Namespace == ns || c.Namespace == "" {
				notified++
			}
		case <-deadline.C:
			t.Fatalf("after %s: %v", timeout, err)
		}
	}
}

func equal(want []seen) func([]seen) error {
	return func(got []seen) error {
		if d := cmp.Diff(want, got); d != "" {
			return fmt.Errorf("targets (-want +got):\n%s", d)
		}
		return nil
	}
}

// ignoreIdleConns leaves client-go's pooled HTTP connections out of leak
// checks: they belong to the process-wide transport cache, not to the
// provider.
var ignoreIdleConns = []goleak.Option{
	goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	goleak.IgnoreAnyFunction("net/http.(*http2ClientConn).readLoop"),
	goleak.IgnoreAnyFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
	goleak.IgnoreAnyFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
}

func TestKubeProviderClusterWide(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	ctx := t.Context()
	before := goleak.IgnoreCurrent()
	env := loadEnv(t, c.Kubeconfig)
	k := NewKube(env, KubeOptions{Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil))})
	closed := false
	defer func() {
		if !closed {
			k.Close()
		}
	}()
	if err := c.Apply(ctx, namespaced(workloads, ns)); err != nil {
		t.Fatal(err)
	}
	if n := waitTargets(t, k, ns, 90*time.Second, equal(settled(2))); n == 0 {
		t.Error("the targets changed without a notification")
	}
	if !slices.Contains(k.Namespaces(), daemon.Namespace{Name: ns, Provider: kube.Provider}) {
		t.Errorf("namespaces %v lack %s", k.Namespaces(), ns)
	}
	// The description shows images; the sidecar is left out of the
	// containers but its image is still what runs.
	for _, tg := range k.Targets() {
		if tg.Ref == "deployment/web" && tg.Namespace == ns && tg.Description != cluster.ToolboxImage {
			t.Errorf("description = %q", tg.Description)
		}
	}

	if _, err := c.Kubectl(ctx, "-n", ns, "scale", "deployment/web", "--replicas=1"); err != nil {
		t.Fatal(err)
	}
	if n := waitTargets(t, k, ns, 60*time.Second, equal(settled(1))); n == 0 {
		t.Error("scaling changed the targets without a notification for the namespace")
	}

	if _, err := c.Kubectl(ctx, "-n", ns, "delete", "pod", "solo", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	want := slices.DeleteFunc(settled(1), func(s seen) bool { return s.Ref == "pod/solo" })
	if n := waitTargets(t, k, ns, 60*time.Second, equal(want)); n == 0 {
		t.Error("deleting a pod changed the targets without a notification for the namespace")
	}

	k.Close()
	closed = true
	if _, ok := <-k.Changed(); ok {
		t.Error("Changed still open after Close")
	}
	goleak.VerifyNone(t, append(ignoreIdleConns, before)...)
}

// namespaced puts every object of a manifest into ns.
func namespaced(manifest, ns string) string {
	return strings.ReplaceAll(manifest, "\nmetadata: {name: ", "\nmetadata: {namespace: "+ns+", name: ")
}

// A namespace's account: may list some kinds in its own namespace only.
// The provider falls back to that namespace, says so, lists the kinds it
// may, and stays quiet through informer resyncs.
func TestKubeProviderNamespaceOnly(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	ctx := t.Context()
	kubeconfig := c.ListerKubeconfig(t, ns, "pods", "services", "deployments.apps", "replicasets.apps", "jobs.batch")
	if err := c.Apply(ctx, namespaced(workloads, ns)); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	k := NewKube(loadEnv(t, kubeconfig), KubeOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Resync: time.Second})
	defer k.Close()
	// No statefulsets here; cronjobs exist but may not be listed.
	want := slices.DeleteFunc(settled(2), func(s seen) bool { return s.Ref == "cronjob/nightly" })
	waitTargets(t, k, ns, 90*time.Second, equal(want))
	if got := k.Namespaces(); !slices.Equal(got, []daemon.Namespace{{Name: ns, Provider: kube.Provider}}) {
		t.Errorf("namespaces = %v, want only %s", got, ns)
	}
	for _, line := range []string{"in the context's namespace only", "forbidden=statefulset,cronjob"} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, logs.String())
		}
	}

	// Resyncs deliver every object again; none of them may notify.
	// Wait for several rounds of them (counted as they are skipped), then
	// a label change that rebuilds the namespace and finds nothing new:
	// no announcement may come of either.
	r0, n0, a0 := k.resyncs.Load(), k.rebuilds.Load(), k.announced.Load()
	objects := int64(len(want))
	if err := poll.Until(ctx, 30*time.Second, func() error {
		if got := k.resyncs.Load() - r0; got < 3*objects {
			return fmt.Errorf("%d resynced objects", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kubectl(ctx, "-n", ns, "label", "pod", "solo", "marked=yes"); err != nil {
		t.Fatal(err)
	}
	// The label changes the pod but not its target: a rebuild that finds
	// nothing new, and no notification.
	if err := poll.Until(ctx, 30*time.Second, func() error {
		if k.rebuilds.Load() == n0 || k.unchanged.Load() == 0 {
			return errors.New("no rebuild for the label yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := k.announced.Load() - a0; n != 0 {
		t.Errorf("%d announcements for resyncs and a label change that alter no target", n)
	}
	if _, err := c.Kubectl(ctx, "-n", ns, "delete", "pod", "solo", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	select {
	case ch := <-k.Changed():
		if ch != (daemon.TargetsChanged{Provider: kube.Provider, Namespace: ns}) {
			t.Errorf("notification %+v", ch)
		}
		if !slices.ContainsFunc(summary(k.Targets(), ns), func(s seen) bool { return s.Ref == "pod/solo" && s.Status == "Terminating" }) {
			t.Errorf("the first notification after resyncs is the deletion, got %v", summary(k.Targets(), ns))
		}
	case <-timeout.C:
		t.Fatal("no notification for the deleted pod")
	}
}

func TestListOnce(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	ctx := t.Context()
	if err := c.Apply(ctx, namespaced(workloads, ns)); err != nil {
		t.Fatal(err)
	}
	env := loadEnv(t, c.Kubeconfig)
	if err := poll.Until(ctx, 90*time.Second, func() error {
		ts, err := kube.List(ctx, env, ns, false)
		if err != nil {
			return err
		}
		return equal(settled(2))(cutJobPods(summary(ts, ns)))
	}); err != nil {
		t.Fatal(err)
	}
	all, err := kube.List(ctx, env, "", true, config.TargetDeployment)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(all, func(t daemon.Target) bool { return t.Namespace == ns && t.Ref == "deployment/web" }) ||
		!slices.ContainsFunc(all, func(t daemon.Target) bool { return t.Namespace == "kube-system" && t.Ref == "deployment/coredns" }) {
		t.Errorf("all namespaces' deployments lack web or coredns: %v", all)
	}
	if slices.ContainsFunc(all, func(t daemon.Target) bool { return t.Kind != string(config.TargetDeployment) }) {
		t.Errorf("only deployments were asked for: %v", all)
	}
	// Services are judged by their pods, listed for them though not shown.
	svc, err := kube.List(ctx, env, ns, false, config.TargetService)
	if err != nil || len(svc) != 1 || !svc[0].Ready {
		t.Errorf("services = %v, %v", svc, err)
	}

	limited := loadEnv(t, c.ListerKubeconfig(t, ns, "pods"))
	for _, tc := range []struct {
		ns    string
		all   bool
		kinds []config.TargetKind
		want  string
	}{
		{all: true, want: "your Kubernetes account may not list pods, deployments.apps, statefulsets.apps, replicasets.apps, jobs.batch, cronjobs.batch, services " +
			"in all namespaces (cluster-wide); ask an administrator for that permission (verbs list and watch), or list one namespace with -n NAMESPACE"},
		{ns: ns, want: "may not list deployments.apps, statefulsets.apps, replicasets.apps, jobs.batch, cronjobs.batch, services in namespace " + ns + "; ask"},
		{ns: ns, kinds: []config.TargetKind{config.TargetCronJob}, want: "may not list jobs.batch, cronjobs.batch in namespace " + ns},
		{ns: "kube-system", kinds: []config.TargetKind{config.TargetPod}, want: "may not list pods in namespace kube-system"},
		{ns: ns, kinds: []config.TargetKind{"deploy"}, want: `unknown kind "deploy"; use one of pod, deployment, statefulset, replicaset, job, cronjob, service`},
	} {
		_, err := kube.List(ctx, limited, tc.ns, tc.all, tc.kinds...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("List(%q, all=%v, %v) = %v, want %q", tc.ns, tc.all, tc.kinds, err, tc.want)
		}
	}
	pods, err := kube.List(ctx, limited, "", false, config.TargetPod)
	if err != nil || len(pods) != 4 {
		t.Errorf("the account's own namespace (from its context): %v, %v", pods, err)
	}
	if _, err := kube.List(ctx, env, "no-such-namespace-"+ns, false); err == nil || !strings.Contains(err.Error(), `namespace "no-such-namespace-`+ns+`" not found`) {
		t.Errorf("unknown namespace: %v", err)
	}
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
