// Package launcher starts a program under supervision. `remocal exec`
// re-executes its own binary in launcher mode (argv[1] == Arg); the launcher
// receives the seccomp filter from the supervisor over an inherited socket,
// installs it on its only relevant thread and execs the program from that
// thread, so the program and everything it starts inherit the filter. Works
// for any program: dynamic or static, glibc, musl or Go.
package launcher

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/handoff"
	"github.com/remocal/remocal/interpose/internal/seccomp"
)

// Arg selects launcher mode in os.Args[1].
const Arg = "__remocal-launch"

// Args builds the launcher's arguments: the handoff descriptor's number in
// the child, the program's resolved path and its argv.
func Args(self string, handoffFD int, path string, argv []string) []string {
	return append([]string{self, Arg, strconv.Itoa(handoffFD), path}, argv...)
}

// Main runs the launcher and returns an exit status if it could not exec.
// Exit statuses follow the shell: 126 for a program that cannot run, 127
// for one that was not found.
func Main(args []string) int {
	// The filter is per thread; it must be installed on the thread that
	// execs, and this goroutine must not move off it in between.
	runtime.LockOSThread()
	if len(args) < 3 {
		fmt.Fprintln(os.Stderr, "remocal: launcher: internal error: missing arguments")
		return 126
	}
	fd, err := strconv.Atoi(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "remocal: launcher: internal error: bad descriptor")
		return 126
	}
	path, argv := args[1], args[2:]
	if err := handoff.Accept(fd); err != nil {
		fmt.Fprintf(os.Stderr, "remocal: %v\n", err)
		return 126
	}
	err = unix.Exec(path, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "remocal: cannot run %s: %v\n", path, err)
	if errors.Is(err, unix.ENOENT) {
		return 127
	}
	return 126
}

// ErrNoSession means Join could not reach the session socket.
var ErrNoSession = errors.New("no remocal session")

// ExecError is a failure to exec the program once it is supervised.
type ExecError struct {
	Path string
	Err  error
}

func (e *ExecError) Error() string { return fmt.Sprintf("cannot run %s: %v", e.Path, e.Err) }
func (e *ExecError) Unwrap() error { return e.Err }

// Supervised reports whether a supervisor answers for this process: it
// asks the question the bootstrap library asks (seccomp.ProbeOption).
func Supervised() bool {
	r, _, errno := unix.Syscall6(unix.SYS_PRCTL, seccomp.ProbeOption, 0, 0, 0, 0, 0)
	return errno == 0 && r == seccomp.ProbeAnswer
}

// Join makes the calling process join the session serving the unix socket
// at socket, the way the bootstrap library does, then execs path with argv
// and the current environment: the program, static or dynamic, and
// everything it starts are supervised by that session. A process that is
// supervised already (the bootstrap library in LD_PRELOAD joined it as it
// started) execs right away: filters never stack. Join returns only on
// failure: an error wrapping ErrNoSession if the socket cannot be reached,
// an *ExecError if exec failed, or the handoff's error.
func Join(socket, path string, argv []string) error {
	// As in Main: the filter covers this thread, which must exec.
	runtime.LockOSThread()
	if Supervised() {
		return &ExecError{Path: path, Err: unix.Exec(path, argv, os.Environ())}
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: socket}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("%w at %s: %w", ErrNoSession, socket, err)
	}
	if warning := allowInspection(fd); warning != "" {
		fmt.Fprintf(os.Stderr, "remocal: %s\n", warning)
	}
	if err := handoff.Accept(fd); err != nil { // closes fd
		return err
	}
	err = unix.Exec(path, argv, os.Environ())
	return &ExecError{Path: path, Err: err}
}

// setPtracer is prctl(PR_SET_PTRACER, pid); a variable so that tests can
// watch Join call it.
var setPtracer = func(pid int) error {
	return unix.Prctl(unix.PR_SET_PTRACER, uintptr(pid), 0, 0, 0)
}

// allowInspection lets the session host, the process listening on the
// session socket fd is connected to, read this process's memory and take
// its descriptors (process_vm_readv, pidfd_getfd), as the bootstrap library
// does. Those need ptrace access, which Yama's ptrace_scope=1 (Ubuntu's
// default) grants only to ancestors, and a program that joins is not the
// session host's descendant. It must run before the filter is installed:
// the program must be inspectable from its first trapped call.
//
// Yama records the exception on the thread group leader and drops it when
// that task is freed: it survives execve from the leader (the same task),
// but not execve from another thread, which frees the old leader. Without
// Yama the prctl fails with EINVAL, which is fine. allowInspection returns
// a warning for anything else: the program then runs, but the supervisor
// cannot read its arguments and fails those calls with EPERM.
func allowInspection(fd int) string {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil || cred.Pid <= 0 {
		if err == nil {
			err = fmt.Errorf("the kernel reports pid %d", cred.Pid)
		}
		return fmt.Sprintf("cannot identify the session host to allow it to inspect this process (%v); under Yama ptrace_scope=1 the session cannot read the program's memory", err)
	}
	err = setPtracer(int(cred.Pid))
	switch {
	case errors.Is(err, unix.EINVAL):
		return "" // no Yama: ptrace access follows the usual rules
	case err != nil:
		return fmt.Sprintf("cannot allow the session host (pid %d) to inspect this process: prctl(PR_SET_PTRACER): %v; under Yama ptrace_scope=1 the session cannot read the program's memory", cred.Pid, err)
	case unix.Gettid() != unix.Getpid():
		return fmt.Sprintf("joining from thread %d, not the main thread %d: Yama forgets the session host's (pid %d) permission to inspect the program when it starts", unix.Gettid(), unix.Getpid(), cred.Pid)
	}
	return ""
}
