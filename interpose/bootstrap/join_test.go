package bootstrap

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/handoff"
	"github.com/remocal/remocal/interpose/internal/seccomp"
)

// These tests load the library into real programs (/bin/sh, dynamically
// linked) and play the session's side of the handoff with package handoff,
// answering notifications the way a supervisor that keeps everything local
// would. They need seccomp user notification, not root.

const socketEnv = "REMOCAL_SESSION_SOCKET" // session.SocketEnv

// fakeSession accepts bootstrap connections and hands each to handle.
type fakeSession struct {
	path  string
	l     *net.UnixListener
	conns atomic.Int32
	wg    sync.WaitGroup
}

func startFakeSession(t *testing.T, handle func(*net.UnixConn)) *fakeSession {
	t.Helper()
	requireUserNotif(t)
	// Short: sun_path holds 107 bytes, test temp dirs can be longer.
	dir, err := os.MkdirTemp("", "rmcb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &fakeSession{path: filepath.Join(dir, "s")}
	s.l, err = net.ListenUnix("unix", &net.UnixAddr{Name: s.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	s.wg.Go(func() {
		for {
			conn, err := s.l.AcceptUnix()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.wg.Go(func() {
				defer conn.Close()
				handle(conn)
			})
		}
	})
	t.Cleanup(func() {
		s.l.Close()
		s.wg.Wait()
	})
	return s
}

func requireUserNotif(t *testing.T) {
	t.Helper()
	if err := seccomp.Check(); err != nil {
		t.Skip(err)
	}
}

// supervised is what a passThrough session saw of one program.
type supervised struct {
	pid      int
	err      error
	notified int
	probes   int
}

// passThrough offers the real filter and answers every notification:
// the probe with ProbeAnswer, everything else continues.
func passThrough(results chan<- supervised) func(*net.UnixConn) {
	return func(conn *net.UnixConn) {
		res, err := handoff.Offer(conn, seccomp.Encode(seccomp.Filter(seccomp.AllOptions)), 10*time.Second)
		if err != nil {
			results <- supervised{err: err}
			return
		}
		defer res.Listener.Close()
		out := supervised{pid: res.PID}
		fds := []unix.PollFd{{Fd: int32(res.Listener.Fd()), Events: unix.POLLIN}}
		var n seccomp.Notif
		for {
			fds[0].Revents = 0
			if _, err := unix.Poll(fds, -1); err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				out.err = err
				break
			}
			if fds[0].Revents&unix.POLLIN == 0 {
				break // every process under the filter exited
			}
			if err := res.Listener.Receive(&n); err != nil {
				continue
			}
			out.notified++
			if n.Data.Nr == seccomp.SysPrctl {
				out.probes++
				res.Listener.Return(n.ID, seccomp.ProbeAnswer)
				continue
			}
			res.Listener.Continue(n.ID)
		}
		results <- out
	}
}

// runResult is how a program ended.
type runResult struct {
	code           int
	pid            int
	stdout, stderr string
}

// run runs argv with the given additions to a clean copy of the
// environment (no LD_PRELOAD or REMOCAL_* of the test's own).
func run(t *testing.T, extraEnv []string, argv ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LD_PRELOAD=") && !strings.HasPrefix(kv, "REMOCAL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := runResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", argv, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%v did not finish within 30s; stderr:\n%s", argv, r.stderr)
	}
	r.pid = cmd.Process.Pid
	t.Logf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", argv, r.code, r.stdout, r.stderr)
	return r
}

func installed(t *testing.T) string {
	t.Helper()
	lib, err := Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return lib
}

func TestJoinHandsOverTheListenerOnce(t *testing.T) {
	results := make(chan supervised, 4)
	s := startFakeSession(t, passThrough(results))
	lib := installed(t)
	// The inner sh inherits the filter: its constructor's probe is
	// answered and it does not connect again. "; exit" keeps sh from
	// exec'ing its last command in place, so there is a real child.
	r := run(t, []string{"LD_PRELOAD=" + lib, socketEnv + "=" + s.path},
		"/bin/sh", "-c", `/bin/sh -c 'echo child'; echo parent; exit 0`)
	if r.code != 0 || r.stdout != "child\nparent\n" || r.stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0, both lines, and nothing on stderr", r.code, r.stdout, r.stderr)
	}
	got := <-results // the loop ends once the program and its child exited
	if got.err != nil {
		t.Fatal(got.err)
	}
	if got.pid != r.pid {
		t.Errorf("the handoff came from pid %d, want the program's %d", got.pid, r.pid)
	}
	if got.probes != 1 || got.notified < 2 {
		t.Errorf("%d notifications, %d probes; want the child's exec and exactly its probe", got.notified, got.probes)
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections to the session, want 1", n)
	}
}

func TestJoinReportsAFilterTheKernelRefuses(t *testing.T) {
	offered := make(chan error, 2)
	s := startFakeSession(t, func(conn *net.UnixConn) {
		bad := seccomp.Encode([]unix.SockFilter{{Code: 0xffff}}) // no such BPF instruction
		_, err := handoff.Offer(conn, bad, 10*time.Second)
		offered <- err
	})
	lib := installed(t)
	r := run(t, []string{"LD_PRELOAD=" + lib, socketEnv + "=" + s.path},
		"/bin/sh", "-c", `/bin/sh -c 'echo child'; echo parent; exit 0`)
	err := <-offered
	if err == nil || !strings.Contains(err.Error(), "the kernel refused the seccomp filter") {
		t.Errorf("the session heard %v, want the kernel's refusal", err)
	}
	want := "remocal: cannot join the session at " + s.path + " (the kernel refused the seccomp filter"
	if r.code != 0 || r.stdout != "child\nparent\n" || strings.Count(r.stderr, "remocal:") != 1 || !strings.HasPrefix(r.stderr, want) ||
		!strings.HasSuffix(r.stderr, "; sh runs without remocal\n") {
		t.Errorf("exit %d, stdout %q, stderr %q; want the program to run and one warning %q...", r.code, r.stdout, r.stderr, want)
	}
	// The child could not join either (it tried: nothing was inherited),
	// but stayed quiet.
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (parent and child each tried)", n)
	}
}

func TestJoinSurvivesASessionThatHangsUp(t *testing.T) {
	s := startFakeSession(t, func(conn *net.UnixConn) {}) // closes at once
	lib := installed(t)
	r := run(t, []string{"LD_PRELOAD=" + lib, socketEnv + "=" + s.path}, "/bin/sh", "-c", "echo ok")
	want := "remocal: cannot join the session at " + s.path + " (the session closed the connection); sh runs without remocal\n"
	if r.code != 0 || r.stdout != "ok\n" || r.stderr != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0, ok and %q", r.code, r.stdout, r.stderr, want)
	}
}

func TestJoinRejectsAMalformedProgram(t *testing.T) {
	s := startFakeSession(t, func(conn *net.UnixConn) {
		conn.Write(binary.LittleEndian.AppendUint32(nil, 7)) // not a multiple of 8
		conn.Write(make([]byte, 7))
		conn.Read(make([]byte, 1)) // until the program hangs up
	})
	lib := installed(t)
	r := run(t, []string{"LD_PRELOAD=" + lib, socketEnv + "=" + s.path}, "/bin/sh", "-c", "echo ok")
	if r.code != 0 || r.stdout != "ok\n" || !strings.Contains(r.stderr, "(the session sent a malformed filter)") {
		t.Errorf("exit %d, stdout %q, stderr %q; want the program to run after one warning", r.code, r.stdout, r.stderr)
	}
}

func TestJoinStopsTheProgramIfTheSessionVanishesMidway(t *testing.T) {
	release := make(chan struct{})
	s := startFakeSession(t, func(conn *net.UnixConn) {
		// The program installs the filter, then cannot send the listener:
		// the session stops reading before it sends the filter, so that
		// the program's send fails however the two are scheduled (shutting
		// down only after the write lost the race on a loaded machine).
		conn.CloseRead()
		prog := seccomp.Encode(seccomp.Filter(seccomp.AllOptions))
		conn.Write(append(binary.LittleEndian.AppendUint32(nil, uint32(len(prog))), prog...))
		// Held open until the test ends: the program must not depend on
		// when the session's end of the socket closes.
		<-release
	})
	t.Cleanup(func() { close(release) }) // runs before the session's cleanup
	lib := installed(t)
	r := run(t, []string{"LD_PRELOAD=" + lib, socketEnv + "=" + s.path}, "/bin/sh", "-c", "echo ran")
	if r.code != 126 || r.stdout != "" || !strings.Contains(r.stderr, "remocal: the session at "+s.path+" went away while sh was joining it") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 126 with an explanation, before the program ran", r.code, r.stdout, r.stderr)
	}
}

func TestUnreachableSessionWarnsOnce(t *testing.T) {
	requireUserNotif(t)
	lib := installed(t)
	missing := filepath.Join(t.TempDir(), "no-session.sock")
	env := []string{"LD_PRELOAD=" + lib, socketEnv + "=" + missing}
	r := run(t, env, "/bin/sh", "-c", "/bin/sh -c true; echo ok; exit 0")
	want := fmt.Sprintf("remocal: cannot reach the session at %s (No such file or directory); sh runs without remocal\n", missing)
	if r.code != 0 || r.stdout != "ok\n" || r.stderr != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0, ok and once %q", r.code, r.stdout, r.stderr, want)
	}
	if r := run(t, append(env, "REMOCAL_BOOTSTRAP_WARNED=1"), "/bin/sh", "-c", "echo ok"); r.code != 0 || r.stderr != "" {
		t.Errorf("already warned: exit %d, stderr %q; want silence", r.code, r.stderr)
	}
	long := "/" + strings.Repeat("x", 120)
	if r := run(t, []string{"LD_PRELOAD=" + lib, socketEnv + "=" + long}, "/bin/sh", "-c", "echo ok"); r.code != 0 ||
		!strings.Contains(r.stderr, "(the socket path is longer than 107 bytes)") {
		t.Errorf("long path: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestWithoutASessionTheLibraryDoesNothing(t *testing.T) {
	lib := installed(t)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var mode string // this process's seccomp mode: the program's must be the same
	for line := range strings.Lines(string(status)) {
		if strings.HasPrefix(line, "Seccomp:") {
			mode = line
		}
	}
	for _, env := range [][]string{{"LD_PRELOAD=" + lib}, {"LD_PRELOAD=" + lib, socketEnv + "="}} {
		r := run(t, env, "/bin/sh", "-c", `echo ok; grep '^Seccomp:' /proc/self/status`)
		if r.code != 0 || r.stdout != "ok\n"+mode || r.stderr != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want a program without any seccomp filter", env, r.code, r.stdout, r.stderr)
		}
	}
}

// earlyThreads is a library that starts a thread in its constructor. Listed
// after the bootstrap library in LD_PRELOAD, it is initialised first, like
// any library the program links: its thread exists before the filter does.
const earlyThreads = `
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static int go[2];
static pthread_t thread;

static const char *probe(void)
{
	return syscall(SYS_prctl, 0x524d434cL, 0L, 0L, 0L, 0L) == 0x524d4f4bL ? "supervised" : "unsupervised";
}

static void *wait_then_probe(void *arg)
{
	char c;
	(void)arg;
	while (read(go[0], &c, 1) < 0)
		;
	printf("early thread: %s\n", probe());
	return NULL;
}

__attribute__((constructor)) static void start(void)
{
	printf("early constructor: %s\n", probe());
	fflush(stdout);
	if (pipe(go) != 0 || pthread_create(&thread, NULL, wait_then_probe, NULL) != 0)
		_exit(99);
}

__attribute__((destructor)) static void stop(void)
{
	if (write(go[1], "x", 1) != 1)
		_exit(98);
	pthread_join(thread, NULL);
	printf("main thread: %s\n", probe());
}
`

func TestThreadsStartedBeforeTheConstructorAreCovered(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("needs gcc to build a library that starts a thread early")
	}
	results := make(chan supervised, 2)
	s := startFakeSession(t, passThrough(results))
	lib := installed(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "early.c")
	os.WriteFile(src, []byte(earlyThreads), 0o644)
	early := filepath.Join(dir, "libearly.so")
	if out, err := exec.Command(gcc, "-shared", "-fPIC", "-pthread", "-o", early, src).CombinedOutput(); err != nil {
		t.Fatalf("build the early-thread library: %v\n%s", err, out)
	}
	r := run(t, []string{"LD_PRELOAD=" + lib + ":" + early, socketEnv + "=" + s.path}, "/bin/true") // exits through exit(): destructors run
	want := "early constructor: unsupervised\nearly thread: supervised\nmain thread: supervised\n"
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want %q: the filter must cover the thread that existed before it (TSYNC)", r.code, r.stdout, r.stderr, want)
	}
	if got := <-results; got.err != nil || got.probes != 2 {
		t.Errorf("session: %+v, want the two probes after the handoff", got)
	}
}
