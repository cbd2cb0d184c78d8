package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remocal/remocal/test/localenv"
)

// TestDemoRunsEndToEnd keeps `make demo` working: it runs the demo binary
// against a freshly built remocal and checks that every section showed the
// target's side of things.
func TestDemoRunsEndToEnd(t *testing.T) {
	localenv.RequireRoot(t)
	dir := t.TempDir()
	for pkg, out := range map[string]string{
		"github.com/remocal/remocal/cmd/remocal":         "remocal",
		"github.com/remocal/remocal/examples/agent-demo": "agent-demo",
	} {
		if b, err := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
	cmd := exec.Command(filepath.Join(dir, "agent-demo"), "-remocal", filepath.Join(dir, "remocal"))
	cmd.Env = append(os.Environ(), "REMOCAL_LOCALENV_ISOLATED=") // let the demo isolate itself
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"API_TOKEN=" + localenv.AppAPIToken,
		`"environment":"remote"`,
		"legacy-billing.internal            -> [" + localenv.HostsOnlyIP.String() + "]",
		"redis> PING                   +PONG",
		"your local process on 127.0.0.1:",
		`-> "answered by your local process" (served by your-laptop)`,
		"X-Remocal-User: someone-else  -> \"inventory on",
		"conflict: port 8080 is already stolen",
		"everything the demo created is gone",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
