package launcher

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Yama is not on every kernel (this test cannot show its effect where
// /proc/sys/kernel/yama is missing), so these tests check that Join asks
// for it: prctl(PR_SET_PTRACER) with the session host's pid, before the
// session sends the filter.
func TestJoinAllowsSessionHostBeforeHandoff(t *testing.T) {
	called := make(chan int, 1)
	orig := setPtracer
	setPtracer = func(pid int) error {
		called <- pid
		return unix.EINVAL // as without Yama: no warning
	}
	t.Cleanup(func() { setPtracer = orig })

	socket := filepath.Join(t.TempDir(), "session.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	joined := make(chan error, 1)
	go func() {
		// Join locks its thread and keeps it: a goroutine of its own.
		joined <- Join(socket, "/bin/true", []string{"true"})
	}()
	conn, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The session sends nothing until prctl has been called: a Join that
	// waited for the filter first would never call it.
	select {
	case pid := <-called:
		if pid != os.Getpid() {
			t.Errorf("PR_SET_PTRACER named pid %d, want the session host's (the listener's) %d", pid, os.Getpid())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Join did not call prctl(PR_SET_PTRACER) before the session sent the filter")
	}
	// A zero-length filter makes the handoff fail, so Join returns
	// instead of exec'ing.
	if _, err := conn.Write(binary.LittleEndian.AppendUint32(nil, 0)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-joined:
		if err == nil || !strings.Contains(err.Error(), "0 byte filter") {
			t.Fatalf("Join = %v, want the handoff's error about the empty filter", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Join did not return")
	}
}

func TestAllowInspectionWarnings(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	orig := setPtracer
	t.Cleanup(func() { setPtracer = orig })

	setPtracer = func(int) error { return unix.EINVAL }
	if w := allowInspection(fds[0]); w != "" {
		t.Errorf("without Yama (EINVAL): warning %q, want none", w)
	}
	setPtracer = func(int) error { return unix.EPERM }
	if w := allowInspection(fds[0]); !strings.Contains(w, "PR_SET_PTRACER") || !strings.Contains(w, unix.EPERM.Error()) {
		t.Errorf("prctl failing with EPERM: warning %q, want one naming PR_SET_PTRACER and the error", w)
	}
	if w := allowInspection(-1); !strings.Contains(w, "cannot identify the session host") {
		t.Errorf("SO_PEERCRED failing: warning %q, want one saying so", w)
	}
}

// The real prctl: where Yama is missing it fails with EINVAL, which Join
// ignores; where it is present, naming this process must succeed.
func TestSetPtracerReal(t *testing.T) {
	err := setPtracer(os.Getpid())
	if _, statErr := os.Stat("/proc/sys/kernel/yama"); statErr != nil {
		if err != unix.EINVAL {
			t.Fatalf("without Yama, prctl(PR_SET_PTRACER) = %v, want EINVAL", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("prctl(PR_SET_PTRACER, self) = %v", err)
	}
	setPtracer(0)
}
