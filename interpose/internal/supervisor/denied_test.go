package supervisor

import (
	"bufio"
	"bytes"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/seccomp"
	"github.com/remocal/remocal/protocol/daemon"
)

// withoutPtraceCap runs fn on a thread without CAP_SYS_PTRACE: capabilities
// are per thread, and the thread is thrown away afterwards (it stays
// locked).
func withoutPtraceCap(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			t.Error(err)
			return
		}
		data[0].Effective &^= 1 << unix.CAP_SYS_PTRACE
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			t.Error(err)
			return
		}
		fn()
	}()
	<-done
}

// A program the supervisor may not inspect (here: not dumpable, to a
// supervisor without CAP_SYS_PTRACE; under Yama ptrace_scope=1: not its
// descendant) gets EPERM, not this machine's files, and the user is told
// once.
func TestDeniedInspectionFailsClosedAndWarns(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is needed to make a non-dumpable process")
	}
	cmd := exec.Command(py, "-c", "import ctypes,sys; ctypes.CDLL(None).prctl(4, 0); print('ready', flush=True); sys.stdin.read()")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		t.Fatalf("python3: %q, %v", line, err)
	}
	var stderr bytes.Buffer
	var mu sync.Mutex
	var events []Event
	s := &Supervisor{cfg: Config{Stderr: &stderr, OnEvent: func(ev Event) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}}}
	s.fs = &remoteFS{s: s}
	var calls []*call
	cwd := int64(unix.AT_FDCWD)
	withoutPtraceCap(t, func() {
		for range 2 {
			c := staleCall(t, s, seccomp.SysOpenat, uint64(cwd), 0x1000, 0)
			c.tid = cmd.Process.Pid
			s.fs.open(c)
			calls = append(calls, c)
		}
	})
	s.wg.Wait()
	for i, c := range calls {
		if !c.answered {
			t.Errorf("call %d was let continue with this machine's files", i)
		}
	}
	if n := s.stats.continued.Load(); n != 0 {
		t.Errorf("%d calls continued", n)
	}
	if len(events) != 1 || events[0].Kind != daemon.EventWarning || !strings.Contains(events[0].Message, "cannot inspect process") {
		t.Errorf("events %+v, want one warning", events)
	}
	if strings.Count(stderr.String(), "cannot inspect process") != 1 {
		t.Errorf("stderr %q, want the warning once", stderr.String())
	}
}
