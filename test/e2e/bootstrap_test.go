package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/interpose/bootstrap"
	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/interpose/session"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/procwatch"
	"github.com/remocal/remocal/test/syncbuf"
)

// The LD_PRELOAD bootstrap end to end: programs started without `remocal
// exec` (as a debugger or an IDE starts them), with the environment
// Session.BootstrapEnv builds, join an in-process session serving the app
// pod. Hostname, DNS and connections through the target prove they joined:
// the environment alone cannot do that.

// bootstrapSession is a session that programs join through the library.
type bootstrapSession struct {
	sess   *session.Session
	lib    string
	socket string
	env    []string // for the programs: BootstrapEnv's result
	dir    string   // the session's (local) working directory
	stderr *syncbuf.Buffer
}

func startBootstrapSession(t *testing.T, env *localenv.Env) *bootstrapSession {
	t.Helper()
	self := built(t, "remocal")
	b := &bootstrapSession{dir: t.TempDir(), stderr: &syncbuf.Buffer{}}
	conn, err := connect.For(fmt.Sprintf("pid/%d", env.App.PID), connect.Options{Self: self, Stderr: b.stderr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b.sess, err = session.Start(ctx, session.Options{
		Connector:  conn,
		Config:     &config.Config{FS: config.FS{Remote: []string{"/etc/inventory"}}},
		ClientName: "bootstrap-test",
		Self:       self,
		WorkDir:    b.dir,
		Stderr:     b.stderr,
	})
	if err != nil {
		t.Fatalf("start the session: %v\n%s", err, b.stderr)
	}
	t.Cleanup(func() {
		b.sess.Close()
		if s := b.stderr.String(); s != "" {
			t.Logf("session stderr:\n%s", s)
		}
	})
	b.socket = filepath.Join(t.TempDir(), "session.sock")
	if err := b.sess.ServeBootstrap(b.socket); err != nil {
		t.Fatal(err)
	}
	if b.lib, err = bootstrap.Install(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if b.env, err = b.sess.BootstrapEnv(withoutBootstrapVars(os.Environ()), b.lib, b.socket); err != nil {
		t.Fatal(err)
	}
	return b
}

// joined checks that exactly one program joined the session: one handoff
// succeeded and none failed (a second connection, from a child that missed
// the inherited filter, would fail: the kernel allows one listener).
func (b *bootstrapSession) joined(t *testing.T) {
	t.Helper()
	if n := b.sess.Supervised(); n != 1 {
		t.Errorf("%d programs joined the session, want 1", n)
	}
	if n := strings.Count(b.stderr.String(), "could not join the session"); n != 0 {
		t.Errorf("%d more programs tried to join the session, want none", n)
	}
}

// withoutBootstrapVars drops what could make a program skip or repeat the
// bootstrap.
func withoutBootstrapVars(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "LD_PRELOAD=") && !strings.HasPrefix(kv, session.SocketEnv+"=") &&
			!strings.HasPrefix(kv, "REMOCAL_BOOTSTRAP_WARNED=") {
			out = append(out, kv)
		}
	}
	return out
}

// runPlain runs argv without remocal exec, in dir, with exactly env, and
// waits. The program and anything it starts run in a process group of
// their own that is killed if the test gives up on them.
func runPlain(t *testing.T, env []string, dir string, argv ...string) procwatch.Result {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = env, dir
	return procwatch.Run(t, cmd)
}

// debianPython is Debian's python3 (dynamically linked against glibc), or
// whichever python3 PATH has.
func debianPython(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return requireTool(t, "python3")
}

const bootstrapScript = `
import os, socket
print("env", os.environ["API_TOKEN"])
print("file", "remote" if '"environment": "remote"' in open("/etc/inventory/config.json").read() else "local")
print("hostname", socket.gethostname())
print("resolve", socket.gethostbyname("redis"))
s = socket.create_connection(("redis.demo.svc.cluster.local", 6379), timeout=20)
s.sendall(b"PING\r\n")
print("redis", s.recv(100).decode().strip())
`

func bootstrapScriptSawTheTarget(t *testing.T, env *localenv.Env, out string) {
	t.Helper()
	mustContain(t, "python output", out,
		"env "+localenv.AppAPIToken,
		"file remote",
		"hostname "+env.App.Hostname,
		"resolve "+localenv.RedisIP.String(),
		"redis +PONG",
	)
}

func TestBootstrapPythonSeesTheTarget(t *testing.T) {
	env := envtest.New(t)
	py := debianPython(t)
	b := startBootstrapSession(t, env)
	r := runPlain(t, b.env, b.dir, py, "-c", bootstrapScript)
	if r.Code != 0 {
		t.Fatalf("python exit %d", r.Code)
	}
	bootstrapScriptSawTheTarget(t, env, r.Stdout)
	if r.Stderr != "" {
		t.Errorf("stderr %q, want nothing: the library is silent when it works", r.Stderr)
	}
	b.joined(t)
}

func TestBootstrapChildrenInheritTheFilter(t *testing.T) {
	env := envtest.New(t)
	py := debianPython(t)
	b := startBootstrapSession(t, env)
	// cat and python3 load the library too; they find the inherited
	// filter and do not connect again.
	r := runPlain(t, b.env, b.dir, "sh", "-c", `cat /etc/inventory/config.json && "$0" -c "$1"; exit $?`, py, bootstrapScript)
	if r.Code != 0 {
		t.Fatalf("exit %d", r.Code)
	}
	mustContain(t, "cat output", r.Stdout, `"environment": "remote"`)
	bootstrapScriptSawTheTarget(t, env, r.Stdout)
	if r.Stderr != "" {
		t.Errorf("stderr %q, want nothing", r.Stderr)
	}
	b.joined(t) // the children did not connect again
}

func TestBootstrapCoversStaticChildren(t *testing.T) {
	env := envtest.New(t)
	probe := built(t, "probe") // static Go: LD_PRELOAD means nothing to it
	b := startBootstrapSession(t, env)
	r := runPlain(t, b.env, b.dir, "sh", "-c", `"$0" read=`+localenv.AppConfigPath+` hostname resolve=redis; exit $?`, probe)
	if r.Code != 0 {
		t.Fatalf("exit %d", r.Code)
	}
	mustContain(t, "probe output", r.Stdout, `"environment": "remote"`, "hostname "+env.App.Hostname,
		"resolve redis: "+localenv.RedisIP.String())
	b.joined(t)
}

func TestBootstrapUnreachableSessionWarnsOnce(t *testing.T) {
	lib, err := bootstrap.Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "gone.sock")
	env := append(withoutBootstrapVars(os.Environ()), "LD_PRELOAD="+lib, session.SocketEnv+"="+missing)
	r := runPlain(t, env, t.TempDir(), "sh", "-c", "true; sh -c true")
	if r.Code != 0 {
		t.Errorf("exit %d, want 0: the program runs without remocal", r.Code)
	}
	want := "remocal: cannot reach the session at " + missing + " (No such file or directory); sh runs without remocal\n"
	if r.Stderr != want {
		t.Errorf("stderr %q, want the warning exactly once: %q", r.Stderr, want)
	}
}

// noStackingProbe asks the supervisor the library's own question.
const noStackingProbe = `
import ctypes
print("probe %#x" % ctypes.CDLL(None).prctl(0x524d434c, 0, 0, 0, 0))
print("file", "remote" if '"remote"' in open("/etc/inventory/config.json").read() else "local")
`

func TestBootstrapUnderRemocalExecDoesNotStack(t *testing.T) {
	env := envtest.New(t)
	py := debianPython(t)
	lib, err := bootstrap.Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A socket nobody serves: a program that connected would hang in the
	// handoff, and its connection would wait here to be counted.
	socket := filepath.Join(t.TempDir(), "decoy.sock")
	decoy, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer decoy.Close()

	cmd := remocalCmd(t, env, []string{"--no-incoming"}, "sh", "-c", `cat /etc/inventory/config.json && "$0" -c "$1"; exit $?`, py, noStackingProbe)
	cmd.Env = append(withoutBootstrapVars(os.Environ()), "LD_PRELOAD="+lib, session.SocketEnv+"="+socket)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Errorf("remocal exec: %v\nstderr:\n%s", err, errb.String())
	}
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	mustContain(t, "output", out.String(), `"environment": "remote"`, fmt.Sprintf("probe %#x", 0x524d4f4b), "file remote")
	if strings.Contains(errb.String(), "remocal: cannot") {
		t.Errorf("the library complained under remocal exec:\n%s", errb.String())
	}
	if n := pendingConnections(t, decoy); n != 0 {
		t.Errorf("%d programs connected to the bootstrap socket although remocal exec supervised them already", n)
	}
}

// pendingConnections accepts, without waiting, whatever is queued on l.
func pendingConnections(t *testing.T, l *net.UnixListener) int {
	t.Helper()
	rc, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	rc.Control(func(fd uintptr) {
		for {
			// The listener is non-blocking: EAGAIN once the queue is empty.
			c, _, err := unix.Accept4(int(fd), unix.SOCK_CLOEXEC)
			if err != nil {
				return
			}
			unix.Close(c)
			n++
		}
	})
	return n
}

func TestBootstrapWithoutASessionDoesNothing(t *testing.T) {
	py := debianPython(t)
	lib, err := bootstrap.Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var mode string // the test's own seccomp mode; the program's must be the same
	for line := range strings.Lines(string(status)) {
		if strings.HasPrefix(line, "Seccomp:") {
			mode = strings.TrimSpace(line)
		}
	}
	env := append(withoutBootstrapVars(os.Environ()), "LD_PRELOAD="+lib)
	r := runPlain(t, env, t.TempDir(), py, "-c", `
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
print("probe", libc.prctl(0x524d434c, 0, 0, 0, 0), errno.errorcode[ctypes.get_errno()])
print([l.strip() for l in open("/proc/self/status") if l.startswith("Seccomp:")][0])
`)
	if r.Code != 0 || r.Stderr != "" {
		t.Errorf("exit %d, stderr %q; want a normal run and nothing on stderr", r.Code, r.Stderr)
	}
	if want := "probe -1 EINVAL\n" + mode + "\n"; r.Stdout != want {
		t.Errorf("stdout %q, want %q: no filter installed", r.Stdout, want)
	}
}
