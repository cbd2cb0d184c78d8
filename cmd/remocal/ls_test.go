package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/procwatch"
)

// lsWorkloads: a Deployment of 2 pods with a known sidecar, its Service,
// and a bare pod.
func lsWorkloads(ns string) string {
	return strings.ReplaceAll(`
apiVersion: apps/v1
kind: Deployment
metadata: {namespace: NS, name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: app, image: `+cluster.ToolboxImage+`, imagePullPolicy: Never, args: [serve]}
      - {name: istio-proxy, image: `+cluster.ToolboxImage+`, imagePullPolicy: Never}
---
apiVersion: v1
kind: Service
metadata: {namespace: NS, name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {namespace: NS, name: solo}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: main, image: `+cluster.ToolboxImage+`, imagePullPolicy: Never}]
`, "NS", ns)
}

func runRemocal(t *testing.T, dir string, env []string, args ...string) procwatch.Result {
	t.Helper()
	cmd := exec.Command(remocal(t), args...)
	cmd.Dir, cmd.Env = dir, env
	return procwatch.Run(t, cmd)
}

// fields splits a table into rows of columns.
func fields(table string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(table), "\n") {
		rows = append(rows, regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1))
	}
	return rows
}

func TestLsFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ls", "-o", "yaml"}, `-o "yaml": use table or json`},
		{[]string{"ls", "--kind", "deployment,widget"}, `--kind "widget": use one or more of pod, deployment, statefulset, replicaset, job, cronjob, service (comma-separated)`},
		{[]string{"ls", "-A", "-n", "x"}, "-A lists every namespace and -n one of them; pass only one"},
		{[]string{"ls"}, "no Kubernetes credentials found"},
	} {
		r := runRemocal(t, t.TempDir(), cleanEnv(t), tc.args...)
		if r.Code == 0 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("remocal %v: exit %d, stderr %q; want %q", tc.args, r.Code, r.Stderr, tc.want)
		}
	}
}

func TestLs(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	ctx := t.Context()
	if err := c.Apply(ctx, lsWorkloads(ns)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kubectl(ctx, "-n", ns, "rollout", "status", "deployment/web", "--timeout=90s"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitPod(ctx, ns, "solo", "Ready", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	// Endpoints aside, the Deployment's status counts ready pods a moment
	// after the pods are; rollout status waited for that.
	env := cleanEnv(t, "KUBECONFIG="+c.Kubeconfig)
	dir := t.TempDir()

	r := runRemocal(t, dir, env, "ls", "-n", ns)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	rows := fields(r.Stdout)
	if got := strings.Join(rows[0], " "); got != "TARGET READY STATUS CONTAINERS" {
		t.Errorf("header %q", got)
	}
	want := map[string]string{
		"deployment/web": "yes 2/2 ready app",
		"pod/solo":       "yes Running main",
		"service/web":    "yes 2/2 pods ready app",
	}
	var refs []string
	for _, row := range rows[1:] {
		refs = append(refs, row[0])
		if w, ok := want[row[0]]; ok && strings.Join(row[1:], " ") != w {
			t.Errorf("row %v, want %s", row, w)
		}
	}
	if !regexp.MustCompile(`^deployment/web pod/solo pod/web-\S+ pod/web-\S+ replicaset/web-\S+ service/web$`).MatchString(strings.Join(refs, " ")) {
		t.Errorf("targets %v, sorted by ref", refs)
	}

	// JSON is the daemon's TargetsResult.
	r = runRemocal(t, dir, env, "ls", "-n", ns, "-o", "json", "--kind", "deploy,svc")
	var res daemon.TargetsResult
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || r.Code != 0 {
		t.Fatalf("-o json: %v, exit %d\n%s%s", err, r.Code, r.Stdout, r.Stderr)
	}
	if len(res.Targets) != 2 || res.Targets[0].Ref != "deployment/web" || res.Targets[1].Ref != "service/web" {
		t.Fatalf("--kind deploy,svc: %+v", res.Targets)
	}
	d := res.Targets[0]
	if d.Kind != "deployment" || d.Name != "web" || d.Namespace != ns || d.Provider != "kubernetes" || !d.Ready ||
		d.Status != "2/2 ready" || strings.Join(d.Containers, ",") != "app" || d.Description != cluster.ToolboxImage {
		t.Errorf("deployment %+v", d)
	}

	// -A: a namespace column, every namespace.
	r = runRemocal(t, dir, env, "ls", "-A", "--kind", "deployment")
	if r.Code != 0 {
		t.Fatalf("-A: exit %d: %s", r.Code, r.Stderr)
	}
	table := fields(r.Stdout)
	if strings.Join(table[0], " ") != "NAMESPACE TARGET READY STATUS CONTAINERS" {
		t.Errorf("-A header %v", table[0])
	}
	found := map[string]bool{}
	for _, row := range table[1:] {
		found[row[0]+" "+row[1]] = true
		if !strings.HasPrefix(row[1], "deployment/") {
			t.Errorf("--kind deployment listed %v", row)
		}
	}
	if !found[ns+" deployment/web"] || !found["kube-system deployment/coredns"] {
		t.Errorf("-A lacks %s/web or kube-system/coredns:\n%s", ns, r.Stdout)
	}

	// The configuration file's kubernetes section chooses the cluster and
	// the namespace when no flag does.
	os.MkdirAll(filepath.Join(dir, ".remocal"), 0o755)
	cfg := `{"kubernetes": {"kubeconfig": "` + c.Kubeconfig + `", "namespace": "` + ns + `"}}`
	if err := os.WriteFile(filepath.Join(dir, ".remocal", "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runRemocal(t, dir, cleanEnv(t), "ls", "--kind", "pod")
	if r.Code != 0 || !strings.Contains(r.Stdout, "pod/solo") {
		t.Errorf("with the configuration's kubernetes section: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// Errors: a namespace that does not exist, and one the account may
	// not list.
	r = runRemocal(t, dir, env, "ls", "-n", "nope-"+ns)
	if r.Code == 0 || !strings.Contains(r.Stderr, `namespace "nope-`+ns+`" not found`) {
		t.Errorf("unknown namespace: exit %d, %s", r.Code, r.Stderr)
	}
	limited := c.ListerKubeconfig(t, ns, "pods")
	r = runRemocal(t, t.TempDir(), cleanEnv(t), "ls", "--kubeconfig", limited, "-n", "kube-system", "--kind", "pod")
	if r.Code == 0 || !strings.Contains(r.Stderr, "your Kubernetes account may not list pods in namespace kube-system; ask an administrator") {
		t.Errorf("forbidden namespace: exit %d, %s", r.Code, r.Stderr)
	}
	r = runRemocal(t, t.TempDir(), cleanEnv(t), "ls", "--kubeconfig", limited, "-A", "--kind", "pod")
	if r.Code == 0 || !strings.Contains(r.Stderr, "may not list pods in all namespaces (cluster-wide)") || !strings.Contains(r.Stderr, "-n NAMESPACE") {
		t.Errorf("forbidden -A: exit %d, %s", r.Code, r.Stderr)
	}
	r = runRemocal(t, t.TempDir(), cleanEnv(t), "ls", "--kubeconfig", limited, "--kind", "po")
	if r.Code != 0 || !strings.Contains(r.Stdout, "pod/solo") {
		t.Errorf("the account's own namespace: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}
