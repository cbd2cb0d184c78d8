package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remocal/remocal/test/gobuild"
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

	cmd := f.local.Command(f.ctx(), "setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		"--", "env", "-i", "HOME="+home, "PATH=/usr/bin:/bin", "KUBECONFIG="+kubeconfig, "XDG_RUNTIME_DIR="+filepath.Join(home, "run"),
		remocal, "exec", "-n", f.ns, "-t", "deploy/inventory", "--steal", "--", probe, "env=GREETING", "hostname", "get=http://inventory/healthz", "read=/etc/hostname")
	cmd.Dir = project
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("remocal exec as uid %d: %v\n%s", uid, err, out)
	}
	pod := f.pods("app=inventory")[0]
	mustContain(t, "output", string(out), "env GREETING=hello from the cluster", "hostname "+pod.name, "get http://inventory/healthz: 200 ok", "read /etc/hostname: "+pod.name)
	if strings.Contains(string(out), "permission denied") {
		t.Errorf("something needed privileges:\n%s", out)
	}
}
