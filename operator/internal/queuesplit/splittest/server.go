package splittest

import (
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// FreePort returns a loopback port nothing listens on now. Tests run in
// their own network namespace (envtest.Main), where nothing else picks
// ports, so it stays free until the server takes it.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// StartServer runs a server program for the test; it is killed and
// waited for when the test ends, and dies with the test process.
func StartServer(t testing.TB, name string, args ...string) {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		// Debian puts servers in /usr/sbin, which a non-login PATH may lack.
		for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin"} {
			if p := filepath.Join(d, name); exec.Command(p, "--version").Run() == nil {
				path, err = p, nil
				break
			}
		}
	}
	if err != nil {
		t.Fatalf("%s is needed: %v (apt-get install %s, or make deps)", name, err, name)
	}
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := &tail{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output (end):\n%s", name, out.String())
		}
	})
}

// tail keeps the last 8 KiB a server wrote.
type tail struct{ b []byte }

func (w *tail) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	if len(w.b) > 8<<10 {
		w.b = w.b[len(w.b)-8<<10:]
	}
	return len(p), nil
}

func (w *tail) String() string { return string(w.b) }

// Port formats a port for a command line.
func Port(p int) string { return strconv.Itoa(p) }
