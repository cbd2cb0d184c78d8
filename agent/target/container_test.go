package target

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A /proc fixture: the real lookup runs against a real node in the cluster
// end-to-end tests; this checks the choice of process on layouts of both
// cgroup versions.
func writeProc(t *testing.T, procs map[int]struct {
	ppid   int
	cgroup string
}) string {
	dir := t.TempDir()
	for pid, p := range procs {
		d := filepath.Join(dir, fmt.Sprint(pid))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "cgroup"), []byte(p.cgroup), 0o644)
		os.WriteFile(filepath.Join(d, "stat"), []byte(fmt.Sprintf("%d (x y) S %d 1 1", pid, p.ppid)), 0o644)
	}
	return dir
}

func TestContainerFindsTheInitProcess(t *testing.T) {
	const id = "4f1c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e"
	v1 := "12:memory:/kubepods/besteffort/pod1234/" + id + "\n1:name=systemd:/kubepods/besteffort/pod1234/" + id + "\n"
	v2 := "0::/kubepods.slice/kubepods-besteffort.slice/cri-containerd-" + id + ".scope\n"
	for name, cg := range map[string]string{"cgroup v1": v1, "cgroup v2": v2} {
		proc := writeProc(t, map[int]struct {
			ppid   int
			cgroup string
		}{
			1:   {0, "0::/init.scope\n"},
			500: {1, "0::/system.slice/containerd.service\n"}, // the shim
			510: {500, cg},                                    // the container's init
			520: {510, cg},                                    // its child
			530: {1, strings.ReplaceAll(cg, id, "aaaaaaaaaaaaaaaaaaaa")},
		})
		c := Container{ID: "containerd://" + id, Proc: proc}
		pid, err := c.findPID()
		if err != nil || pid != 510 {
			t.Errorf("%s: pid %d, %v; want 510", name, pid, err)
		}
	}
	if _, err := (Container{ID: "containerd://" + id, Proc: writeProc(t, nil)}).findPID(); err == nil || !strings.Contains(err.Error(), "hostPID") {
		t.Errorf("missing container: %v", err)
	}
	if _, err := (Container{ID: "abc"}).findPID(); err == nil {
		t.Error("a short ID must be refused")
	}
}
