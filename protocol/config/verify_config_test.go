package config

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyConfigCommand runs `remocal verify-config` as users do, on the
// golden files, checking its output and exit status. The command lives in
// package main, so it is built rather than called.
func TestVerifyConfigCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the remocal binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build remocal with")
	}
	bin := filepath.Join(t.TempDir(), "remocal")
	build := exec.Command(goTool, "build", "-o", bin, "github.com/remocal/remocal/cmd/remocal")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	abs, err := filepath.Abs(testdata)
	if err != nil {
		t.Fatal(err)
	}
	run := func(dir string, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"verify-config"}, args...)...)
		cmd.Dir = dir
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exit):
			code = exit.ExitCode()
		default:
			t.Fatalf("run %v: %v", args, err)
		}
		return o.String(), e.String(), code
	}

	t.Run("valid", func(t *testing.T) {
		out, errOut, code := run(abs, "valid_full.json")
		if code != 0 || out != "valid_full.json: ok\n" || errOut != "" {
			t.Errorf("got status %d, stdout %q, stderr %q; want 0, %q, nothing", code, out, errOut, "valid_full.json: ok\n")
		}
	})
	t.Run("invalid", func(t *testing.T) {
		for _, name := range []string{"invalid_bad_port.json", "invalid_syntax.json"} {
			want, err := os.ReadFile(filepath.Join(abs, strings.TrimSuffix(name, ".json")+".golden"))
			if err != nil {
				t.Fatal(err)
			}
			out, errOut, code := run(abs, name)
			if code != 1 || out != string(want) {
				t.Errorf("%s: got status %d, stdout:\n%s\nwant status 1, stdout:\n%s", name, code, out, want)
			}
			if !strings.Contains(errOut, name+" is not a valid configuration") {
				t.Errorf("%s: stderr %q does not sum up", name, errOut)
			}
		}
	})
	t.Run("found upward", func(t *testing.T) {
		root := t.TempDir()
		sub := filepath.Join(root, "src", "pkg")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, Dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, Dir, File), []byte(`{"hostname": "no"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _, code := run(sub)
		want := "../../.remocal/config.json:1:14: $.hostname: got string \"no\", expected true or false\n"
		if code != 1 || out != want {
			t.Errorf("got status %d, stdout %q; want 1, %q", code, out, want)
		}
	})
	t.Run("not found", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := Find(dir); !errors.Is(err, ErrNotFound) {
			t.Skip("a configuration file above the temp dir")
		}
		out, errOut, code := run(dir)
		if code != 2 || out != "" {
			t.Errorf("got status %d, stdout %q; want 2 and nothing", code, out)
		}
		for _, want := range []string{dir, "mkdir -p .remocal", "remocal verify-config FILE"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr %q does not mention %q", errOut, want)
			}
		}
	})
	t.Run("schema", func(t *testing.T) {
		out, _, code := run(abs, "--schema")
		if code != 0 || out != string(Schema()) {
			t.Errorf("--schema: status %d, output differs from Schema()", code)
		}
	})
}
