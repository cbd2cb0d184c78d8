package kube

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/gobuild"
	"github.com/remocal/remocal/test/procwatch"
)

// devcontainerImage is a developer's container in the cluster: remocal,
// the probe and the toolbox (whose sleep keeps the pod running).
const devcontainerImage = "remocal.local/test/devcontainer:" + version

// devcontainerRole is what remocal exec needs in the namespace
// (docs/kubernetes.md, Permissions) except pods/portforward: the direct
// transport needs no port-forward.
const devcontainerRole = `
- apiGroups: [""]
  resources: [pods, services]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [list]
- apiGroups: [apps]
  resources: [deployments, statefulsets, replicasets]
  verbs: [get, list, watch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
`

// startDevcontainer runs a devcontainer pod in the test's namespace under
// a ServiceAccount with devcontainerRole; remocal in it finds the cluster
// as any in-cluster client does (the ServiceAccount's token). The image
// goes when the test ends, the pod with the namespace.
func (f *fixture) startDevcontainer() {
	f.t.Helper()
	dir := f.t.TempDir()
	archive := filepath.Join(dir, "devcontainer.tar")
	files := []cluster.ImageFile{
		{Path: "/remocal", Source: gobuild.Program(f.t, gobuild.Remocal, gobuild.Options{Static: true, Version: version}), Mode: 0o755},
		{Path: "/probe", Source: f.probe(), Mode: 0o755},
		{Path: "/toolbox", Source: gobuild.Program(f.t, "github.com/remocal/remocal/test/cluster/cmd/toolbox", gobuild.Options{Static: true}), Mode: 0o755},
	}
	if err := cluster.WriteImage(archive, cluster.Image{Name: devcontainerImage, Entrypoint: []string{"/toolbox"}, Cmd: []string{"sleep"}, Files: files}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.c.ImportImage(f.ctx(), archive); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		// The namespace (and with it the pod) is deleted first.
		if err := f.c.RemoveImage(f.ctx(), devcontainerImage); err != nil {
			f.t.Log(err)
		}
	})
	f.apply(fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: devcontainer}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: devcontainer}
rules:%s---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devcontainer}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: devcontainer}
subjects: [{kind: ServiceAccount, name: devcontainer, namespace: %s}]
---
apiVersion: v1
kind: Pod
metadata: {name: devcontainer}
spec:
  serviceAccountName: devcontainer
  terminationGracePeriodSeconds: 0
  containers:
  - name: dev
    image: %s
    imagePullPolicy: Never
    env:
    - {name: HOME, value: /tmp}
    - {name: REMOCAL_CLIENT_NAME, value: dev@devcontainer}
    volumeMounts: [{name: tmp, mountPath: /tmp}]
  volumes: [{name: tmp, emptyDir: {}}]
`, devcontainerRole, f.ns, devcontainerImage))
	f.kubectl("wait", "--for=condition=Ready", "pod/devcontainer", "--timeout=90s")
}

// inDevcontainer is `remocal exec -n NS --operator=false -t TARGET FLAGS
// -- ARGV` in the devcontainer pod, through kubectl exec.
func (f *fixture) inDevcontainer(target string, flags []string, argv ...string) *exec.Cmd {
	args := append([]string{"-n", f.ns, "exec", "devcontainer", "--", "/remocal", "exec", "-n", f.ns, "--operator=false", "-t", target}, flags...)
	return f.c.KubectlCmd(f.t.Context(), append(append(args, "--"), argv...)...)
}

// From a devcontainer in the cluster, remocal reaches the agent directly
// over the pod network (TLS, its pinned certificate) without a
// port-forward, says so, and everything works through it: the target's
// environment, outgoing connections through the target, and stolen
// incoming traffic. Forcing the port-forward fails, naming the permission
// this account lacks: the direct path needed none.
func TestDirectTransportFromDevcontainer(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	f.startDevcontainer()

	r := procwatch.Run(t, f.inDevcontainer("deployment/inventory", []string{"--no-incoming"},
		"/probe", "env=GREETING", "get=http://inventory/healthz"))
	if r.Code != 0 {
		t.Fatalf("remocal exec in the devcontainer: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	mustContain(t, "stderr", r.Stderr, "remocal: connected to the agent directly at 10.")
	mustContain(t, "stderr", r.Stderr, ":47114 (TLS)")
	mustContain(t, "stdout", r.Stdout, "env GREETING=hello from the cluster")
	mustContain(t, "stdout", r.Stdout, "get http://inventory/healthz: 200 ok")

	// The agent now runs: a second session reuses it, directly again.
	steal := procwatch.Start(t, f.inDevcontainer("deployment/inventory", []string{"--steal"}, "/probe", "serve=:8080"))
	steal.Expect(steal.Stderr, "connected to the agent directly at 10.")
	steal.Expect(steal.Stderr, "stealing port 8080 of the target")
	if body := f.mustGet("http://inventory/mine"); body != "local probe" {
		t.Errorf("a request to the Service got %q, want the devcontainer's answer", body)
	}
	steal.Expect(steal.Stdout, "request GET /mine")
	if code := steal.Wait(); code != 0 { // serve exits after one request
		t.Errorf("the stealing session: exit %d", code)
	}

	pf := procwatch.Run(t, f.inDevcontainer("deployment/inventory", []string{"--no-incoming", "--transport", "port-forward"}, "/probe", "hostname"))
	if pf.Code == 0 || !strings.Contains(pf.Stderr, "pods/portforward") {
		t.Errorf("--transport port-forward without the permission: exit %d\n%s", pf.Code, pf.Stderr)
	}
}

// From the laptop, whose only route leads to the apiserver, the pod
// network cannot be reached: auto falls back to the port-forward at once
// and says why; --transport direct fails saying so.
func TestDirectTransportFallsBack(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	r := f.exec("deployment/inventory", []string{"--no-incoming"}, f.probe(), "env=GREETING")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	mustContain(t, "stderr", r.Stderr, "remocal: connected to the agent through a port-forward (not directly: 10.")
	mustContain(t, "stderr", r.Stderr, "cannot be reached from here")
	mustContain(t, "stdout", r.Stdout, "env GREETING=hello from the cluster")

	d := f.exec("deployment/inventory", []string{"--no-incoming", "--transport", "direct"}, f.probe(), "hostname")
	if d.Code == 0 || !strings.Contains(d.Stderr, "cannot reach the agent") || !strings.Contains(d.Stderr, "directly at 10.") {
		t.Errorf("--transport direct from the laptop: exit %d\n%s", d.Code, d.Stderr)
	}
}
