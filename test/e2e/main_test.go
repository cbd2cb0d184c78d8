// Package e2e runs `remocal exec` end to end: real programs (curl, python3,
// a static Go binary, ...) run under the real binary against the local
// "remote" environment of internal/localenv. The test binary, and so every
// program it runs, sits in a loopback-only network namespace: whatever the
// programs reach of the environment, they reach through remocal.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/gobuild"
	"github.com/remocal/remocal/test/procwatch"
)

func TestMain(m *testing.M) {
	envtest.Main(m, gobuild.Cleanup)
}

// built returns "remocal" or "probe" (the static test program in testdata),
// both statically linked: the hardest case for interposition.
func built(t testing.TB, name string) string {
	t.Helper()
	pkg := gobuild.Remocal
	if name == "probe" {
		pkg = gobuild.Probe
	}
	return gobuild.Program(t, pkg, gobuild.Options{Static: true})
}

// execIn runs `remocal exec --target pid/<app> [flags] -- argv` and waits.
func execIn(t *testing.T, env *localenv.Env, flags []string, argv ...string) procwatch.Result {
	t.Helper()
	return procwatch.Run(t, remocalCmd(t, env, flags, argv...))
}

func remocalCmd(t *testing.T, env *localenv.Env, flags []string, argv ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	args := append([]string{"exec", "--target", fmt.Sprintf("pid/%d", env.App.PID)}, flags...)
	args = append(append(args, "--"), argv...)
	cmd := exec.CommandContext(ctx, built(t, "remocal"), args...)
	cmd.Dir = projectDir(t)
	return cmd
}

// projectConfig is the .remocal/config.json of the tests' project: the
// example app keeps its config under /etc, which stays local by default.
const projectConfig = `{
  // the app's own config directory lives in the target
  "fs": {"remote": ["/etc/inventory"]},
}
`

// projectDir is a fresh project directory with projectConfig.
func projectDir(t *testing.T) string {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".remocal"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".remocal", "config.json"), []byte(projectConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is required (make test installs it): %v", name, err)
	}
	return p
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

func startExec(t *testing.T, env *localenv.Env, flags []string, argv ...string) *procwatch.Proc {
	t.Helper()
	return procwatch.Start(t, remocalCmd(t, env, flags, argv...))
}

// runRemocal runs the remocal binary with args and no environment.
func runRemocal(t *testing.T, args ...string) procwatch.Result {
	t.Helper()
	cmd := exec.Command(built(t, "remocal"), args...)
	cmd.Dir = t.TempDir()
	return procwatch.Run(t, cmd)
}
