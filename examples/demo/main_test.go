package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/gobuild"
)

// TestDemoRunsEndToEnd keeps `make demo` working: it runs the demo against
// freshly built binaries and checks each section showed the pod's side.
func TestDemoRunsEndToEnd(t *testing.T) {
	envtest.RequireRoot(t)
	static := gobuild.Options{Static: true}
	defer gobuild.Cleanup()
	demo := gobuild.Program(t, "github.com/remocal/remocal/examples/demo", static)
	remocal := gobuild.Program(t, gobuild.Remocal, static)
	inventory := gobuild.Program(t, "github.com/remocal/remocal/examples/inventory", static)
	cmd := exec.Command(demo, "-remocal", remocal, "-inventory", inventory)
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
