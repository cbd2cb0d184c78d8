package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remocal/remocal/test/localenv"
)

// TestDemoRunsEndToEnd keeps `make demo` working: it runs the demo against
// freshly built binaries and checks each section showed the pod's side.
func TestDemoRunsEndToEnd(t *testing.T) {
	localenv.RequireRoot(t)
	dir := t.TempDir()
	for pkg, out := range map[string]string{
		"github.com/remocal/remocal/cmd/remocal":        "remocal",
		"github.com/remocal/remocal/examples/inventory": "inventory",
		"github.com/remocal/remocal/examples/demo":      "demo",
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
	cmd := exec.Command(filepath.Join(dir, "demo"), "-remocal", filepath.Join(dir, "remocal"), "-inventory", filepath.Join(dir, "inventory"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"remocal: mirroring port 8080 of the target to 127.0.0.1:8080",
		`(redis "redis.demo.svc.cluster.local:6379"`,
		": hello from your laptop",
		`"environment": "remote"`,
		`{"count":1,"name":"laptop-widget"}`,
		`["laptop-widget"]`,
		"inventory: GET /healthz   <- the mirrored copy",
		"remocal: stealing port 8080 of the target",
		"after your copy exits: peer -> GET /  =>  \"inventory on",
		"everything the demo created is gone",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
