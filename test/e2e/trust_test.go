package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/internal/localenv"
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

// A cloned repository's .remocal/config.json names an agent over TCP (an
// unauthenticated server of its authors' choosing, which would serve the
// program its files, environment and network) or a kubeconfig inside the
// repository (whose exec plugin would run the authors' command). remocal
// exec refuses both without connecting or running anything; the same
// settings on the command line, the user's choice, still work.
func TestRepositoryConfigCannotChooseAgentOrKubeconfig(t *testing.T) {
	env := envtest.New(t)
	repo := func(t *testing.T, config string) string {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, ".remocal"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".remocal", "config.json"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	remocal := func(t *testing.T, dir string, args ...string) procwatch.Result {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		t.Cleanup(cancel)
		cmd := exec.CommandContext(ctx, built(t, "remocal"), args...)
		cmd.Dir = dir
		return procwatch.Run(t, cmd)
	}

	t.Run("agent address", func(t *testing.T) {
		planted, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer planted.Close()
		dir := repo(t, `{"agent": {"address": "tcp:`+planted.Addr().String()+`"}}`)
		target := fmt.Sprintf("pid/%d", env.App.PID)
		r := remocal(t, dir, "exec", "--target", target, "--", "true")
		if r.Code != 1 {
			t.Errorf("exec with the repository's agent address: exit %d, want 1", r.Code)
		}
		mustContain(t, "remocal's messages", r.Stderr, "$.agent.address", "a configuration file (a cloned repository's) cannot choose one", "pass --agent tcp:"+planted.Addr().String())
		// A connection remocal made would wait in the listener's backlog.
		if pendingConnection(t, planted.(*net.TCPListener)) {
			t.Error("remocal connected to the agent address of the repository's configuration")
		}

		// The user's own --agent: a real agent on TCP, with its key, serves
		// the session.
		key := filepath.Join(t.TempDir(), "agent.key")
		if err := os.WriteFile(key, []byte("a key of at least sixteen bytes"), 0o600); err != nil {
			t.Fatal(err)
		}
		agent := procwatch.Start(t, exec.Command(built(t, "remocal"), "agent", "--target-pid", fmt.Sprint(env.App.PID),
			"--listen", "tcp:127.0.0.1:0", "--secret-file", key))
		addr := strings.TrimPrefix(agent.Expect(agent.Stdout, "remocal-agent listening on "), "remocal-agent listening on ")
		r = remocal(t, dir, "exec", "--target", target, "--agent", addr, "--agent-secret-file", key, "--no-incoming", "--", "sh", "-c", `echo "GREETING=$GREETING"`)
		if r.Code != 0 {
			t.Fatalf("exec --agent %s: exit %d", addr, r.Code)
		}
		mustContain(t, "output", r.Stdout, "GREETING="+localenv.AppGreeting)
	})

	t.Run("kubeconfig inside the repository", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "plugin-ran")
		dir := repo(t, `{"target": "deployment/api"}`)
		kubeconfig := filepath.Join(dir, "deploy", "kubeconfig")
		if err := os.MkdirAll(filepath.Dir(kubeconfig), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: sh
      args: ["-c", "touch `+marker+`; exit 1"]
      interactiveMode: Never
`), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{kubeconfig, "deploy/kubeconfig"} {
			if err := os.WriteFile(filepath.Join(dir, ".remocal", "config.json"),
				[]byte(`{"target": "deployment/api", "kubernetes": {"kubeconfig": "`+k+`"}}`), 0o644); err != nil {
				t.Fatal(err)
			}
			r := remocal(t, dir, "exec", "--", "true")
			if r.Code != 1 {
				t.Errorf("exec with the repository's kubeconfig %s: exit %d, want 1", k, r.Code)
			}
			mustContain(t, "remocal's messages", r.Stderr, "$.kubernetes.kubeconfig", "exec plugin", "--kubeconfig")
			if _, err := os.Stat(marker); err == nil {
				t.Fatalf("the exec plugin of the repository's kubeconfig %s ran", k)
			}
			r = remocal(t, dir, "ls")
			mustContain(t, "remocal ls's messages", r.Stderr, "$.kubernetes.kubeconfig")
			if _, err := os.Stat(marker); err == nil {
				t.Fatalf("remocal ls ran the exec plugin of the repository's kubeconfig %s", k)
			}
		}
		// Passed on the command line, the kubeconfig is the user's choice
		// and is used: its plugin runs (and fails, having no cluster).
		r := remocal(t, dir, "exec", "--kubeconfig", kubeconfig, "--", "true")
		if r.Code == 0 {
			t.Errorf("exec against a kubeconfig without a cluster succeeded")
		}
		if _, err := os.Stat(marker); err != nil {
			t.Errorf("with --kubeconfig the kubeconfig was not used: %v\n%s", err, r.Stderr)
		}
	})
}

// pendingConnection reports whether l has a connection waiting to be
// accepted, without waiting for one.
func pendingConnection(t *testing.T, l *net.TCPListener) bool {
	raw, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var pending bool
	raw.Control(func(fd uintptr) {
		nfd, _, err := unix.Accept4(int(fd), unix.SOCK_CLOEXEC)
		if err == nil {
			unix.Close(nfd)
			pending = true
		}
	})
	return pending
}
