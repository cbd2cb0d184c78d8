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

	"github.com/remocal/remocal/interpose/handoff"
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
