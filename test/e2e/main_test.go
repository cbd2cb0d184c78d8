// Package e2e runs `remocal exec` end to end: real programs (curl, python3,
// a static Go binary, ...) run under the real binary against the local
// "remote" environment of test/localenv. The test binary, and so every
// program it runs, sits in a loopback-only network namespace: whatever the
// programs reach of the environment, they reach through remocal.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/test/gobuild"
	"github.com/remocal/remocal/test/localenv"
)

func TestMain(m *testing.M) {
	localenv.Main(m, gobuild.Cleanup)
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

// result is what a remocal exec run produced.
type result struct {
	code           int
	stdout, stderr string
}

// execIn runs `remocal exec --target pid/<app> [flags] -- argv` and waits.
func execIn(t *testing.T, env *localenv.Env, flags []string, argv ...string) result {
	t.Helper()
	cmd := remocalCmd(t, env, flags, argv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run remocal exec: %v", err)
	}
	t.Logf("remocal exec %v -- %v: exit %d\nstdout:\n%s\nstderr:\n%s", flags, argv, res.code, res.stdout, res.stderr)
	return res
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

// running is a remocal exec in progress whose output is watched line by
// line.
type running struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout chan string
	stderr chan string
	done   chan struct{}
	code   int
	mu     sync.Mutex
	outLog []string
}

func startExec(t *testing.T, env *localenv.Env, flags []string, argv ...string) *running {
	t.Helper()
	cmd := remocalCmd(t, env, flags, argv...)
	return startCmd(t, cmd)
}

func startCmd(t *testing.T, cmd *exec.Cmd) *running {
	t.Helper()
	r := &running{t: t, cmd: cmd, stdout: make(chan string, 100), stderr: make(chan string, 100), done: make(chan struct{})}
	var err error
	if r.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	// Plain pipes rather than exec's copying goroutines: processes remocal
	// leaves behind (the keeper, a program's background child) may keep
	// the write ends open, and the exit status must not wait for them.
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	// A group of its own, so cleanup can end the program and its children
	// too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	errW.Close()
	var readers sync.WaitGroup
	for _, p := range []struct {
		r  *os.File
		ch chan string
		nm string
	}{{outR, r.stdout, "stdout"}, {errR, r.stderr, "stderr"}} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer close(p.ch)
			defer p.r.Close()
			sc := bufio.NewScanner(p.r)
			for sc.Scan() {
				line := sc.Text()
				r.mu.Lock()
				r.outLog = append(r.outLog, p.nm+": "+line)
				r.mu.Unlock()
				p.ch <- line
			}
		}()
	}
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		} else if err != nil {
			r.code = -1
		}
		close(r.done)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
		// Whatever still holds the pipes (a keeper waiting for its last
		// program) is ended above with the group or exits with it; the
		// readers finish at EOF.
		readers.Wait()
		r.mu.Lock()
		t.Logf("output of %v:\n%s", cmd.Args, strings.Join(r.outLog, "\n"))
		r.mu.Unlock()
	})
	return r
}

// expect waits for a line containing want on ch and returns it.
func (r *running) expect(ch chan string, want string) string {
	r.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-ch:
			if !ok {
				r.t.Fatalf("output ended without %q", want)
			}
			if strings.Contains(line, want) {
				return line
			}
		case <-timeout:
			r.t.Fatalf("no line with %q within 30s", want)
		}
	}
}

// wait returns the exit status.
func (r *running) wait() int {
	r.t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(30 * time.Second):
		r.t.Fatal("remocal exec did not exit")
		return -1
	}
}

// runRemocal runs the remocal binary with args and no environment.
func runRemocal(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(built(t, "remocal"), args...)
	cmd.Dir = t.TempDir()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return res
}
