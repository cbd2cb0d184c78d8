package vscode_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/gobuild"
)

// runTimeout bounds one whole VS Code run (code-server start, every suite);
// the driver's own deadline is a little shorter so it can save a
// screenshot of whatever hung.
const runTimeout = 8 * time.Minute

// Environment variables that change a run (all optional):
//
//	REMOCAL_VSCODE_SUITES     comma-separated suite file prefixes (suite/tests)
//	REMOCAL_ARTIFACTS         where screenshots and logs go (default artifacts/)
//	REMOCAL_VSCODE_CACHE      the host's install (default /var/cache/remocal-vscode)
//	REMOCAL_VSCODE_EXTENSION  the extension to test (default extensions/vscode)
//	REMOCAL_E2E_BINARY        a remocal binary to use instead of building one

// staticProgram is the static printenv of testdata (the wrapper path).
const staticProgram = "github.com/remocal/remocal/test/e2e/vscode/testdata/printenv"

func TestVSCode(t *testing.T) {
	if testing.Short() {
		t.Skip("a real VS Code run takes minutes: make vscode-e2e (and so make test) runs it")
	}
	envtest.RequireRoot(t)
	h := findHost(t)
	pkgDir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	suites := os.Getenv("REMOCAL_VSCODE_SUITES")
	// The extension under development is remocal's; the fixture's debug
	// type is installed beside it. Without remocal's (only the harness's
	// own suite), the fixture is the one under development.
	fixture := filepath.Join(pkgDir, "testdata", "fixture-debug")
	dev, install := fixture, []string(nil)
	if ext, err := remocalExtension(pkgDir, os.Getenv("REMOCAL_VSCODE_EXTENSION")); err == nil {
		dev, install = ext, []string{fixture}
	} else if needsRemocal(suites) {
		t.Fatalf("%v; REMOCAL_VSCODE_EXTENSION=DIR tests an extension elsewhere, REMOCAL_VSCODE_SUITES=00 runs only the harness's own suite", err)
	}

	start := time.Now()
	env := envtest.New(t)
	remocal := os.Getenv("REMOCAL_E2E_BINARY")
	if remocal == "" {
		remocal = gobuild.Program(t, gobuild.Remocal, gobuild.Options{Static: true})
	}
	programs := map[string]string{
		"static":  gobuild.Program(t, staticProgram, gobuild.Options{Static: true}),
		"dynamic": buildC(t, filepath.Join(pkgDir, "testdata", "printenv.c")),
	}
	t.Logf("environment and programs ready in %s", time.Since(start).Round(100*time.Millisecond))

	runDir := t.TempDir()
	scratch := filepath.Join(runDir, "scratch") // files the suites write (terminal output)
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		t.Fatal(err)
	}
	runtimeDir := filepath.Join(runDir, "xdg-runtime")
	socket := filepath.Join(runtimeDir, "remocal", "daemon.sock")
	silent := startSilentAPI(t)
	ws := makeWorkspace(t, pkgDir, env, remocal, h.node, silent.kubeconfig, programs)
	artifacts := artifactsDir(t, pkgDir)
	c := startControl(t, env, map[string]any{
		"target":          fmt.Sprintf("pid/%d", env.App.PID),
		"workspace":       ws,
		"secondWorkspace": makeSecondWorkspace(t, env),
		"programs":        programs,
		"nodeApp":         filepath.Join(ws, "app.js"),
		"appPort":         localenv.AppPort,
		"apiToken":        localenv.AppAPIToken,
		"configMarker":    `"environment": "remote"`,
		"remocal":         remocal,
		"daemonSocket":    socket,
		"scratch":         scratch,
		"artifacts":       artifacts,
	}, socket, silent)
	// Whatever the run leaves behind: the daemon the extension started
	// (it detaches from code-server's process group) and its sessions.
	t.Cleanup(func() { stopDaemon(t, socket) })

	code := runDriver(t, h, driverRun{
		workspace: ws,
		extension: dev,
		install:   install,
		tests:     filepath.Join(pkgDir, "suite", "index.js"),
		artifacts: artifacts,
		runDir:    runDir,
		env: []string{
			"PATH=" + filepath.Dir(remocal) + ":" + h.nodeBin + ":" + os.Getenv("PATH"),
			"REMOCAL_E2E_CONTROL=" + c.url,
			"REMOCAL_ARTIFACTS=" + artifacts,
			"REMOCAL_VSCODE_SUITES=" + suites,
		},
	})
	t.Logf("VS Code run took %s; screenshots and logs in %s", time.Since(start).Round(100*time.Millisecond), artifacts)
	if code != 0 {
		logExtensionOutput(t, artifacts)
		t.Fatalf("the in-host suites failed (driver exit %d); see the [suite] lines above and %s", code, artifacts)
	}
	pngs, _ := filepath.Glob(filepath.Join(artifacts, "*.png"))
	if len(pngs) == 0 {
		t.Errorf("no screenshots in %s: the suites take them and the driver saves them", artifacts)
	}
}

// needsRemocal reports whether the selected suites include any beyond the
// harness's own (00-*), which need the remocal extension.
func needsRemocal(suites string) bool {
	if suites == "" {
		return true
	}
	for _, s := range strings.Split(suites, ",") {
		if s = strings.TrimSpace(s); s != "" && !strings.HasPrefix(s, "00") {
			return true
		}
	}
	return false
}

// remocalExtension is extensions/vscode (or dir, when set), if it is
// built.
func remocalExtension(pkgDir, dir string) (string, error) {
	if dir == "" {
		dir = filepath.Join(pkgDir, "..", "..", "..", "extensions", "vscode")
	}
	if _, err := os.Stat(filepath.Join(dir, "package.json")); err != nil {
		return "", fmt.Errorf("the remocal extension is not in this checkout (%s)", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err != nil {
		return "", fmt.Errorf("the remocal extension is not built (%s/out is missing): run make vscode", dir)
	}
	return filepath.Abs(dir)
}

// buildC compiles src with gcc into a dynamically linked program.
func buildC(t *testing.T, src string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatalf("gcc is required for the dynamic test program (make deps installs it): %v", err)
	}
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(src), ".c"))
	if b, err := exec.Command(gcc, "-O1", "-Wall", "-Werror", "-o", out, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", src, err, b)
	}
	return out
}

// artifactsDir is $REMOCAL_ARTIFACTS, else artifacts/ beside this file
// (gitignored), emptied first so old screenshots cannot pass for new ones.
func artifactsDir(t *testing.T, pkgDir string) string {
	t.Helper()
	dir := os.Getenv("REMOCAL_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(pkgDir, "artifacts")
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

type driverRun struct {
	workspace, tests, artifacts, runDir string
	extension                           string
	install                             []string
	env                                 []string
}

// runDriver runs driver/run.mjs and returns its exit code. Its output goes
// to artifacts/driver.log; the suites' own lines also to the test log.
func runDriver(t *testing.T, h host, r driverRun) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	args := []string{filepath.Join("driver", "run.mjs"),
		"--code-server", h.codeServer, "--playwright-core", h.playwright,
		"--workspace", r.workspace, "--tests", r.tests, "--artifacts", r.artifacts,
		"--run-dir", r.runDir, "--timeout", fmt.Sprint(int((runTimeout - 30*time.Second).Seconds()))}
	args = append(args, "--extension", r.extension)
	for _, e := range r.install {
		args = append(args, "--install", e)
	}
	cmd := exec.CommandContext(ctx, h.node, args...)
	cmd.Env = append(os.Environ(), r.env...)
	// The driver kills code-server's process group itself; if the driver
	// dies, the kernel ends it with the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	logFile, err := os.Create(filepath.Join(r.artifacts, "driver.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the driver: %v", err)
	}
	var tail []string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(logFile, line)
		if strings.Contains(line, "[suite ") || strings.HasPrefix(line, "[driver") {
			t.Log(line)
		}
		if tail = append(tail, line); len(tail) > 200 {
			tail = tail[1:]
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		t.Logf("the driver's last lines (all of it in %s):\n%s", logFile.Name(), strings.Join(tail, "\n"))
		return exit.ExitCode()
	default:
		t.Logf("the driver's last lines:\n%s", strings.Join(tail, "\n"))
		t.Fatalf("the driver failed: %v", err)
		return -1
	}
}

// logExtensionOutput logs the end of the remocal extension's output
// channel, which the driver copied from the server's logs: what the
// extension did and the daemon's messages, the first thing to read when a
// suite fails.
func logExtensionOutput(t *testing.T, artifacts string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(artifacts, "server-logs", "*", "exthost*", "output_logging_*", "*remocal.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if len(b) > 16<<10 {
			b = b[len(b)-16<<10:]
		}
		t.Logf("the extension's output (%s, last 16 KiB):\n%s", f, b)
	}
}
