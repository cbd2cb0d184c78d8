package daemonclient_example

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/gobuild"
)

func TestMain(m *testing.M) { envtest.Main(m, gobuild.Cleanup) }

// TestPythonScriptDrivesTheDaemon runs the example end to end: the script
// starts the daemon through `remocal daemon --stdio`, starts a session on
// the local environment's app, runs python3 in it, reads the details and
// stops it.
func TestPythonScriptDrivesTheDaemon(t *testing.T) {
	env := envtest.New(t)
	dir := t.TempDir()
	remocal := gobuild.Program(t, gobuild.Remocal, gobuild.Options{})
	runtime, err := os.MkdirTemp("", "rmcx") // short: the daemon's socket lives here
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(runtime)
	os.Chmod(runtime, 0o700)
	workspace := filepath.Join(dir, "ws")
	os.MkdirAll(filepath.Join(workspace, ".remocal"), 0o755)
	os.WriteFile(filepath.Join(workspace, ".remocal", "config.json"), []byte(`{"fs": {"remote": ["/etc/inventory"]}, "network": {"incoming": {"mode": "off"}}}`), 0o644)

	cmd := exec.Command("python3", "remocal_daemon.py", fmt.Sprintf("pid/%d", env.App.PID), workspace, "--",
		"python3", "-c", "print(open('/etc/inventory/config.json').read().split()[2])")
	cmd.Env = append(os.Environ(), "REMOCAL="+remocal, "XDG_RUNTIME_DIR="+runtime)
	out, err := cmd.CombinedOutput()
	t.Logf("script output:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"session s1 active incoming: off", "program exit 0", `program output: "remote",`,
		"remote operations: {", "sessions: ['s1']", "stopped; sessions now: []"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The daemon the script started: shut it down rather than wait for its
	// idle timeout.
	if out, err := exec.Command(remocal, "rpc", "--socket", filepath.Join(runtime, "remocal", "daemon.sock"), "remocal/daemon/shutdown").CombinedOutput(); err != nil {
		t.Errorf("shutdown: %v\n%s", err, out)
	}
}
