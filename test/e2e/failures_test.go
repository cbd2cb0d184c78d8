package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/poll"
)

func TestUnreachableTarget(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", "--target", "pid/999999999", "--", "true"}, "target pid/999999999: no such process"},
		{[]string{"exec", "--target", "pid/1", "--agent", "unix:/nonexistent/agent.sock", "--", "true"}, "cannot reach the agent at unix:/nonexistent/agent.sock"},
		{[]string{"exec", "--", "true"}, "no target: pass --target"},
		{[]string{"exec", "--target", "daemonset/api", "--", "true"}, `$.target: got "daemonset/api", unknown kind "daemonset"`},
		{[]string{"exec", "--target", "deploy/api", "--kubeconfig", "/nonexistent/kubeconfig", "--", "true"}, `/nonexistent/kubeconfig`},
	} {
		r := runRemocal(t, c.args...)
		if r.Code != 1 || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("remocal %v: exit %d, stderr %q; want exit 1 and %q", c.args, r.Code, r.Stderr, c.want)
		}
	}
}

func TestCommandNotFound(t *testing.T) {
	env := envtest.New(t)
	r := execIn(t, env, nil, "no-such-program-anywhere")
	if r.Code != 127 || !strings.Contains(r.Stderr, `"no-such-program-anywhere" is not in PATH`) {
		t.Errorf("exit %d, stderr %q; want 127 and a not-found message", r.Code, r.Stderr)
	}
}

func TestExitStatusIsTheProgramsOwn(t *testing.T) {
	env := envtest.New(t)
	if r := execIn(t, env, []string{"--no-incoming"}, "sh", "-c", "exit 42"); r.Code != 42 || r.Stderr != "" {
		t.Errorf("exit %d stderr %q, want 42 and nothing from remocal", r.Code, r.Stderr)
	}
	if r := execIn(t, env, []string{"--no-incoming"}, "sh", "-c", "kill -TERM $$"); r.Code != 128+int(syscall.SIGTERM) {
		t.Errorf("killed by SIGTERM: exit %d, want %d", r.Code, 128+int(syscall.SIGTERM))
	}
}

func TestBadConfig(t *testing.T) {
	env := envtest.New(t)
	cfg := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(cfg, []byte(`{
  "network": {"incoming": {"mode": "copy"}},
  "fs": {"mdoe": "read"}
}`), 0o644)
	r := execIn(t, env, []string{"-f", cfg}, "true")
	if r.Code != 1 {
		t.Errorf("exit %d, want 1", r.Code)
	}
	mustContain(t, "stderr", r.Stderr, "$.network.incoming.mode", `"mirror"`, "$.fs", "mdoe")
}

// agentOf finds the agent process remocal exec started.
func agentOf(t *testing.T, remocalPID int) int {
	t.Helper()
	agent := 0
	if err := poll.Until(t.Context(), 10*time.Second, func() error {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err != nil || !strings.Contains(string(cmdline), "agent\x00--target-pid") {
				continue
			}
			fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
			if len(fields) > 1 && fields[1] == strconv.Itoa(remocalPID) {
				agent = pid
				return nil
			}
		}
		return fmt.Errorf("no agent process whose parent is remocal (pid %d)", remocalPID)
	}); err != nil {
		t.Fatal(err)
	}
	return agent
}

// TestAgentKilledMidSession: the program keeps running, remote operations
// fail promptly with an error, and remocal says what happened.
func TestAgentKilledMidSession(t *testing.T) {
	env := envtest.New(t)
	r := startExec(t, env, []string{"--no-incoming"}, built(t, "probe"),
		"read="+localenv.AppConfigPath, "wait", "read="+localenv.AppConfigPath)
	r.Expect(r.Stdout, `"environment": "remote"`)
	r.Expect(r.Stdout, "waiting")
	agent := agentOf(t, r.Cmd.Process.Pid)
	if err := syscall.Kill(agent, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.Expect(r.Stderr, "lost the connection to the agent")
	r.Stdin.Write([]byte("\n"))
	line := r.Expect(r.Stdout, "read: ERROR")
	if !strings.Contains(line, "input/output error") {
		t.Errorf("after the agent died, a remote read should fail with EIO: %s", line)
	}
	if code := r.Wait(); code != 1 {
		t.Errorf("exit %d, want the program's own 1", code)
	}
}

// TestSupervisorKilledKeeperTakesOver: if remocal itself dies, the program
// goes on with this machine's files and network instead of failing every
// intercepted call with ENOSYS.
func TestSupervisorKilledKeeperTakesOver(t *testing.T) {
	env := envtest.New(t)
	r := startExec(t, env, []string{"--no-incoming"}, built(t, "probe"),
		"read="+localenv.AppConfigPath, "wait", "stat=/etc/passwd", "hostname")
	r.Expect(r.Stdout, `"environment": "remote"`)
	r.Expect(r.Stdout, "waiting")
	if err := r.Cmd.Process.Kill(); err != nil { // remocal exec only, not its group
		t.Fatal(err)
	}
	r.Stdin.Write([]byte("\n"))
	r.Expect(r.Stdout, "stat /etc/passwd: size=")
	host, _ := os.Hostname()
	r.Expect(r.Stdout, "hostname "+host) // this machine's again
	r.Expect(r.Stderr, "they continue with this machine's files and network")
}

// TestSessionEndsWhileABackgroundChildHoldsAConnection: remocal exits when
// the program does, even if a child it left behind keeps a connection
// through the target open; the child goes on under the keeper.
func TestSessionEndsWhileABackgroundChildHoldsAConnection(t *testing.T) {
	env := envtest.New(t)
	out := filepath.Join(t.TempDir(), "child.out")
	// The child connects to Redis through the target, then waits for input
	// that never comes, holding the connection; the shell waits until the
	// child is connected and exits.
	r := startExec(t, env, []string{"--no-incoming"}, "sh", "-c",
		// (A background job's stdin is /dev/null unless redirected: fd 3
		// keeps the test's pipe, which stays open.)
		fmt.Sprintf("exec 3<&0; %s hold=%s:%d wait <&3 >%s 2>&1 & until grep -q waiting %s; do :; done; exit 3",
			built(t, "probe"), localenv.RedisIP, localenv.RedisPort, out, out))
	if code := r.Wait(); code != 3 {
		t.Errorf("exit %d, want the shell's 3", code)
	}
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), "holding") {
		t.Errorf("the child did not connect before the session ended: %s", data)
	}
}

// TestSupervisorKilledWhileACallIsInFlight: a call the supervisor had
// received but not answered when it died is answered by the keeper, so the
// program's thread does not wait forever. The agent is stopped so that a
// remote stat stays in flight.
func TestSupervisorKilledWhileACallIsInFlight(t *testing.T) {
	env := envtest.New(t)
	const blocked = "/etc/inventory/in-flight"
	r := startExec(t, env, []string{"--no-incoming"}, built(t, "probe"),
		"read="+localenv.AppConfigPath, "wait", "stat="+blocked)
	r.Expect(r.Stdout, `"environment": "remote"`)
	r.Expect(r.Stdout, "waiting")
	agent := agentOf(t, r.Cmd.Process.Pid)
	if err := syscall.Kill(agent, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(agent, syscall.SIGCONT) })
	r.Stdin.Write([]byte("\n"))
	// The stat is in flight once a thread of the program waits in it.
	probe := childNamed(t, r.Cmd.Process.Pid, "probe")
	if err := poll.Until(t.Context(), 10*time.Second, func() error {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", probe))
		for _, task := range tasks {
			sc, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", probe, task.Name()))
			if nr, _, _ := strings.Cut(string(sc), " "); nr == strconv.Itoa(syscall.SYS_NEWFSTATAT) {
				return nil
			}
		}
		return fmt.Errorf("no thread of %d in newfstatat", probe)
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.Cmd.Process.Kill(); err != nil { // remocal exec only
		t.Fatal(err)
	}
	start := time.Now()
	// Locally the path does not exist either: the call returns.
	line := r.Expect(r.Stdout, "stat: ERROR")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the call in flight returned only after %v", d)
	}
	if !strings.Contains(line, blocked) || !strings.Contains(line, "no such file") {
		t.Errorf("the call in flight should have gone on locally: %s", line)
	}
}

// childNamed finds the child of parent whose executable is named name.
func childNamed(t *testing.T, parent int, name string) int {
	t.Helper()
	pid := 0
	if err := poll.Until(t.Context(), 10*time.Second, func() error {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			p, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
			if err != nil {
				continue
			}
			s := string(stat)
			open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
			fields := strings.Fields(s[end+1:])
			if open < 0 || s[open+1:end] != name || len(fields) < 2 || fields[1] != strconv.Itoa(parent) {
				continue
			}
			pid = p
			return nil
		}
		return fmt.Errorf("no child %q of %d", name, parent)
	}); err != nil {
		t.Fatal(err)
	}
	return pid
}
