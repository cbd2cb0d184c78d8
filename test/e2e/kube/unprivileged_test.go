package kube

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remocal/remocal/test/gobuild"
	"github.com/remocal/remocal/test/procwatch"
)

// A developer's laptop runs remocal as an ordinary user: for a Kubernetes
// target nothing local needs root (the agent runs in the cluster; seccomp
// user notification needs no privilege). The test drops to uid 1000 with
// no capabilities inside the laptop's namespace.
func TestExecAsUnprivilegedUser(t *testing.T) {
	const uid = 1000
	f := newFixture(t)
	f.deployInventory(1)
	// Everything the user's remocal reads is the user's: its binaries,
	// the kubeconfig, the project and a home directory.
	// (Not t.TempDir: its parent is root's alone.)
	home, err := os.MkdirTemp("", "remocal-user")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	project := filepath.Join(home, "project")
	if err := os.MkdirAll(filepath.Join(project, ".remocal"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(project, ".remocal", "config.json"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{home, project, filepath.Join(project, ".remocal"), filepath.Join(project, ".remocal", "config.json")} {
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	own := func(src, name string, mode os.FileMode) string {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(home, name)
		if err := os.WriteFile(dst, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dst, uid, uid); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	remocal := own(gobuild.Program(t, gobuild.Remocal, gobuild.Options{Static: true, Version: version}), "remocal", 0o755)
	probe := own(f.probe(), "probe", 0o755)
	kubeconfig := own(f.kubeconfig, "kubeconfig", 0o600)

	cmd := f.local.Command(context.Background(), "setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		"--", "env", "-i", "HOME="+home, "PATH=/usr/bin:/bin", "KUBECONFIG="+kubeconfig, "XDG_RUNTIME_DIR="+filepath.Join(home, "run"),
		remocal, "exec", "-n", f.ns, "-t", "deploy/inventory", "--steal", "--",
		probe, "env=GREETING", "hostname", "get=http://inventory/healthz", "read=/etc/hostname", "serve=:8080")
	cmd.Dir = project
	p := procwatch.Start(t, cmd)
	pod := f.pods("app=inventory")[0]
	for _, want := range []string{"env GREETING=hello from the cluster", "hostname " + pod.name, "get http://inventory/healthz: 200 ok", "read /etc/hostname: " + pod.name} {
		p.Expect(p.Stdout, want)
	}
	// Incoming too: its listen is caught and the pod's port stolen.
	p.Expect(p.Stderr, "stealing port 8080")
	if body := f.mustGet(appURL(pod, "/as-user")); body != "local probe" {
		t.Errorf("the pod's port answered %q, want the unprivileged laptop's", body)
	}
	if code := p.Wait(); code != 0 { // serve exits after one request
		t.Errorf("remocal exec as uid %d: exit %d", uid, code)
	}
	for _, line := range p.Lines() {
		if strings.Contains(line, "permission denied") {
			t.Errorf("something needed privileges: %s", line)
		}
	}
}
