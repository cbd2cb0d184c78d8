package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/procwatch"
)

// The target sets variables that would make this machine's programs load
// their toolchain from the target's paths (PYTHONHOME, as the pyservice
// image does) or run the target's code (BASH_ENV naming a script in a
// directory that is read from the target). The local programs keep this
// machine's values, remocal exec says which it left out, and an exact name
// in env.include takes the target's value.
func TestToolchainVariablesStayLocal(t *testing.T) {
	env := envtest.New(t)
	pod, err := env.StartApp(t.Context(), "toolchain", netip.MustParseAddr("10.77.0.21"), map[string]string{
		"PYTHONHOME": "/opt/target-python",
		"BASH_ENV":   "/etc/inventory/profile.sh",
		"APP_MODE":   "remote",
	})
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("/proc/%d/root/etc/inventory/profile.sh", pod.PID)
	if err := os.WriteFile(script, []byte("echo code-of-the-target-ran\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bash := requireTool(t, "bash")
	run := func(t *testing.T, config string) procwatch.Result {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, ".remocal"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".remocal", "config.json"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		t.Cleanup(cancel)
		cmd := exec.CommandContext(ctx, built(t, "remocal"), "exec", "--target", fmt.Sprintf("pid/%d", pod.PID), "--no-incoming", "--",
			bash, "-c", `echo "PYTHONHOME=${PYTHONHOME-unset} BASH_ENV=${BASH_ENV-unset} APP_MODE=$APP_MODE"`)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PYTHONHOME=/home/me/.pyenv/versions/3.12")
		r := procwatch.Run(t, cmd)
		if r.Code != 0 {
			t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
		}
		return r
	}
	t.Run("kept local by default", func(t *testing.T) {
		r := run(t, `{"fs": {"remote": ["/etc/inventory"]}}`)
		mustContain(t, "output", r.Stdout, "PYTHONHOME=/home/me/.pyenv/versions/3.12 BASH_ENV=unset APP_MODE=remote")
		mustNotContain(t, "output", r.Stdout, "code-of-the-target-ran")
		mustContain(t, "remocal's messages", r.Stderr, "kept this machine's BASH_ENV, PYTHONHOME, not the target's",
			`"include": ["*", "BASH_ENV"]`)
	})
	t.Run("taken when named in env.include", func(t *testing.T) {
		r := run(t, `{"fs": {"remote": ["/etc/inventory"]}, "env": {"include": ["*", "PYTHONHOME"]}}`)
		mustContain(t, "output", r.Stdout, "PYTHONHOME=/opt/target-python BASH_ENV=unset APP_MODE=remote")
		mustContain(t, "remocal's messages", r.Stderr, "kept this machine's BASH_ENV, not")
	})
}

func mustNotContain(t *testing.T, what, got string, unwanted ...string) {
	t.Helper()
	for _, u := range unwanted {
		if strings.Contains(got, u) {
			t.Errorf("%s has %q:\n%s", what, u, got)
		}
	}
}
