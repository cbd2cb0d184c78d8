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
	if err := handoff.Accept(fd); err != nil { // closes fd
		return err
	}
	err = unix.Exec(path, argv, os.Environ())
	return &ExecError{Path: path, Err: err}
}
