// Package jetbrains runs the JetBrains plugin core's integration tests
// (extensions/jetbrains/core, DaemonIT) against the real daemon and the
// local environment. The Java tests run as a child of this test binary, so
// inside its loopback-only network namespace; the target is localenv's App
// pod, and the only way they reach the environment is through remocal or
// through the control endpoint served here, which sends requests from the
// Peer pod.
package jetbrains

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/daemonclient"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/gobuild"
	"github.com/remocal/remocal/test/poll"
)

func TestMain(m *testing.M) {
	envtest.Main(m, gobuild.Cleanup)
}

// classpathEnv is set by make jetbrains-core-test (test/setup/jetbrains-core.sh),
// which compiles the core and its tests: the compiled classes, gson and the
// JUnit console launcher.
const classpathEnv = "REMOCAL_JETBRAINS_CLASSPATH"

func TestJavaCoreAgainstTheDaemon(t *testing.T) {
	cp := os.Getenv(classpathEnv)
	if cp == "" {
		t.Skip(classpathEnv + " is not set: the JetBrains core's Java tests run with make jetbrains-core-test (part of make test), which compiles them")
	}
	env := envtest.New(t)
	bin := gobuild.Program(t, gobuild.Remocal, gobuild.Options{})
	runtime := shortTempDir(t)
	socket := filepath.Join(runtime, "daemon.sock")
	t.Cleanup(func() { stopDaemon(t, socket) })

	workspace := t.TempDir()
	if err := os.MkdirAll(filepath.Join(workspace, ".remocal"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := `{"fs": {"remote": ["/etc/inventory"]}, "network": {"incoming": {"mode": "steal"}}}`
	if err := os.WriteFile(filepath.Join(workspace, ".remocal", "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	control := serveControl(t, env)

	launcher := ""
	for _, p := range filepath.SplitList(cp) {
		if strings.HasSuffix(p, "junit-platform-console-standalone.jar") {
			launcher = p
		}
	}
	if launcher == "" {
		t.Fatalf("%s=%s has no junit-platform-console-standalone.jar; run make jetbrains-core-test", classpathEnv, cp)
	}
	repo, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "java", "-Dremocal.repo="+repo, "-jar", launcher, "-cp", cp,
		"--select-class", "dev.remocal.jetbrains.core.it.DaemonIT", "--fail-if-no-tests",
		"--disable-banner", "--disable-ansi-colors", "--details=tree")
	cmd.Env = append(os.Environ(),
		"REMOCAL_IT_BINARY="+bin,
		"REMOCAL_IT_SOCKET="+socket,
		fmt.Sprintf("REMOCAL_IT_TARGET=pid/%d", env.App.PID),
		"REMOCAL_IT_WORKSPACE="+workspace,
		"REMOCAL_IT_CONTROL="+control,
		"REMOCAL_IT_API_TOKEN="+localenv.AppAPIToken,
		"REMOCAL_IT_FILE="+localenv.AppConfigPath,
		`REMOCAL_IT_FILE_TEXT="environment": "remote"`,
		fmt.Sprintf("REMOCAL_IT_PORT=%d", localenv.AppPort),
	)
	// Its own process group, so that whatever the tests leave running
	// (a program in a session) is killed with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	t.Logf("java DaemonIT:\n%s", out)
	if err != nil {
		t.Fatalf("the Java integration tests failed: %v (output above)", err)
	}
	if !strings.Contains(string(out), "tests successful") || strings.Contains(string(out), "[         0 tests successful") {
		t.Fatalf("the Java integration tests ran no test (output above)")
	}
}

// serveControl serves GET /peer?path=P on loopback: it sends GET P to the
// target's port from the Peer pod, as another pod of the cluster would, and
// answers with the status and body it got. The Java tests use it to see a
// request stolen; they never dial the environment themselves.
func serveControl(t *testing.T, env *localenv.Env) string {
	peer := env.HTTP(env.Peer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Query().Get("path")
		if r.URL.Path != "/peer" || !strings.HasPrefix(path, "/") {
			http.Error(w, "want GET /peer?path=/...", http.StatusBadRequest)
			return
		}
		url := fmt.Sprintf("http://%s%s", net.JoinHostPort(localenv.AppIP.String(), fmt.Sprint(localenv.AppPort)), path)
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, url, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := peer.Do(req)
		if err != nil {
			http.Error(w, "from the peer pod: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			http.Error(w, "reading the answer: "+err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("control endpoint: %v", err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
		peer.CloseIdleConnections()
	})
	return "http://" + l.Addr().String()
}

// stopDaemon ends the daemon the Java tests' forwarders started (it
// outlives them by design), with its sessions, and waits for it to exit.
func stopDaemon(t *testing.T, socket string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := daemonclient.Dial(ctx, socket, daemonclient.Options{Name: "test/e2e/jetbrains cleanup"})
	if err != nil {
		return // none runs
	}
	defer c.Close()
	var info daemon.DaemonInfo
	if err := c.Call(ctx, daemon.MethodDaemonInfo, nil, &info); err != nil {
		t.Errorf("daemon info before stopping it: %v", err)
		return
	}
	c.Call(ctx, daemon.MethodDaemonShutdown, daemon.DaemonShutdownParams{Force: true}, nil)
	err = poll.Until(ctx, 20*time.Second, func() error {
		if syscall.Kill(info.PID, 0) == nil {
			return fmt.Errorf("daemon pid %d still runs", info.PID)
		}
		return nil
	})
	if err != nil {
		syscall.Kill(info.PID, syscall.SIGKILL)
		t.Errorf("the daemon did not exit after remocal/daemon/shutdown: %v", err)
	}
}

// shortTempDir keeps the daemon's unix socket paths under the 108-byte limit.
func shortTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "rmjb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
