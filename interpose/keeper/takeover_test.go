package keeper

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/inflight"
	"github.com/remocal/remocal/interpose/internal/seccomp"
	"github.com/remocal/remocal/test/poll"
)

// The fallback keeper is this test binary, as it is the remocal binary
// in production.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Arg {
		os.Exit(Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// TestKeeperTakesOver supervises a thread of this test with a real filter
// and listener, lets the supervisor (the test) vanish with a call received
// and unanswered, and checks that the keeper answers that call, the calls
// after it and the supervision probe, and exits with the thread. Both
// keepers: the embedded program, and the remocal binary where the system
// refuses to execute a memfd (here: one without execute permission, which
// the kernel refuses with EACCES as it would under vm.memfd_noexec=2).
func TestKeeperTakesOver(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	orig := embedded
	t.Cleanup(func() { embedded = orig })
	for _, tc := range []struct {
		name, exe string
		copy      func() (*os.File, error)
	}{
		{"embedded", "/memfd:" + Name, orig},
		{"fallback", self, func() (*os.File, error) {
			f, err := sealedCopy(program)
			if err == nil {
				err = f.Chmod(0o644)
			}
			return f, err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			embedded = tc.copy
			checkTakeover(t, self, tc.exe)
		})
	}
}

func checkTakeover(t *testing.T, self, exePrefix string) {
	th := startFiltered(t)
	table, err := inflight.New()
	if err != nil {
		t.Fatal(err)
	}
	defer table.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stderr, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	pid, err := Start(self, th.l.File(), r, table.File(), stderr)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Start returns once the exec succeeded.
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); !strings.HasPrefix(exe, exePrefix) {
		t.Errorf("the keeper runs %q, want %s...", exe, exePrefix)
	}

	// The supervisor receives a getppid and dies before answering it.
	ppid := th.do(func() (uintptr, error) { return uintptr(unix.Getppid()), nil })
	var n seccomp.Notif
	if err := th.l.Receive(&n); err != nil {
		t.Fatal(err)
	}
	if n.Data.Nr != unix.SYS_GETPPID {
		t.Fatalf("notified of system call %d, want getppid", n.Data.Nr)
	}
	table.Received(n.ID)
	th.l.Close()
	w.Close()

	if got := th.wait(t, ppid); got.val != uintptr(os.Getppid()) || got.err != nil {
		t.Errorf("getppid in flight when the supervisor died: %d, %v; want %d", got.val, got.err, os.Getppid())
	}
	probe := th.do(func() (uintptr, error) { return 0, unix.Prctl(unix.PR_GET_DUMPABLE, 0, 0, 0, 0) })
	if got := th.wait(t, probe); !errors.Is(got.err, unix.EINVAL) {
		t.Errorf("prctl under the keeper: %d, %v; want EINVAL (no longer supervised)", got.val, got.err)
	}
	later := th.do(func() (uintptr, error) { return uintptr(unix.Getppid()), nil })
	if got := th.wait(t, later); got.val != uintptr(os.Getppid()) {
		t.Errorf("getppid under the keeper: %d, %v", got.val, got.err)
	}

	th.exit()
	if err := poll.Until(t.Context(), 10*time.Second, func() error {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			return fmt.Errorf("the keeper %d still runs after the last supervised thread exited", pid)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if out, _ := os.ReadFile(stderr.Name()); !strings.Contains(string(out), "they continue with this machine's files and network") {
		t.Errorf("the keeper's standard error: %q, want its warning", out)
	}
}

type result struct {
	val uintptr
	err error
}

// filtered is an OS thread of this process under a filter that notifies
// getppid and prctl; it runs the functions given to do, and exits with
// exit.
type filtered struct {
	l     *seccomp.Listener
	calls chan func()
}

func startFiltered(t *testing.T) *filtered {
	th := &filtered{calls: make(chan func())}
	ready := make(chan error, 1)
	go th.run(ready)
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(th.exit)
	return th
}

// run installs the filter on a thread locked to this goroutine and never
// unlocked: the thread ends with the goroutine, and with it the filter's
// last user. Go never ends the process's main thread (it parks it), so a
// filter installed there would outlive the test: on the main thread, run
// goes on in a goroutine of its own, which cannot be scheduled on this
// thread while it stays locked here.
func (th *filtered) run(ready chan<- error) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		locked := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(locked)
			th.serve(ready)
		}()
		<-locked
		runtime.UnlockOSThread()
		return
	}
	th.serve(ready)
}

func (th *filtered) serve(ready chan<- error) {
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_GETPPID, Jt: 2},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_PRCTL, Jt: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_USER_NOTIF},
	}
	l, err := seccomp.Install(prog)
	th.l = l
	ready <- err
	if err != nil {
		return
	}
	for f := range th.calls {
		f()
	}
}

func (th *filtered) do(f func() (uintptr, error)) <-chan result {
	done := make(chan result, 1)
	th.calls <- func() {
		v, err := f()
		done <- result{v, err}
	}
	return done
}

func (th *filtered) wait(t *testing.T, c <-chan result) result {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("a supervised call got no answer from the keeper")
		return result{}
	}
}

func (th *filtered) exit() {
	if th.calls != nil {
		close(th.calls)
		th.calls = nil
	}
}
