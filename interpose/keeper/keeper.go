// Package keeper keeps a supervised process tree running if its supervisor
// dies. Without it, once the last copy of the notification listener is
// closed, every system call the filter notifies fails with ENOSYS, and a
// program whose supervisor crashed would break in confusing ways. The keeper
// is a tiny separate process holding a copy of the listener; it waits until
// the supervisor is gone (its pipe closes) and then lets every notified
// system call continue, so the programs go on running locally, until the
// last of them exits. That includes the calls the supervisor had received
// and not answered when it died, which the kernel would never notify again:
// the supervisor records them in a table shared with the keeper (package
// inflight).
//
// There is one keeper per supervised program, and it lives as long as the
// program, so what it costs counts: it is keeper.c, a static musl program
// of about 21 KiB that holds about 40 KiB of memory (PSS), committed
// (built by `make keeper`) and embedded in remocal like the bootstrap
// library, and run from a sealed memfd so that nothing is written to disk.
// Where the system refuses to execute a memfd (vm.memfd_noexec=2), Start
// falls back to Main, the same loop in Go run by the remocal binary itself
// (os.Args[1] == Arg), which works everywhere but costs a whole Go
// runtime and every remocal package's initialisation: several MiB more.
package keeper

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/inflight"
	"github.com/remocal/remocal/interpose/internal/seccomp"
)

// Arg selects keeper mode in os.Args[1].
const Arg = "__remocal-keeper"

// Main runs the keeper: args are the listener's and the pipe's descriptor
// numbers, and optionally the in-flight table's.
func Main(args []string) int {
	if len(args) != 2 && len(args) != 3 {
		return 2
	}
	lfd, err1 := strconv.Atoi(args[0])
	pfd, err2 := strconv.Atoi(args[1])
	if err1 != nil || err2 != nil {
		return 2
	}
	var table *os.File
	if len(args) == 3 {
		tfd, err := strconv.Atoi(args[2])
		if err != nil {
			return 2
		}
		table = os.NewFile(uintptr(tfd), "inflight")
	}
	// The keeper outlives a Ctrl-C of the session on purpose: it is the
	// one that must answer for the programs afterwards.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	pipe := os.NewFile(uintptr(pfd), "supervisor")
	buf := make([]byte, 64)
	for {
		if _, err := pipe.Read(buf); err != nil {
			break
		}
	}
	pipe.Close()
	l := seccomp.NewListener(lfd)
	if table != nil {
		answerInFlight(l, table)
		table.Close()
	}
	return serve(l)
}

// answerInFlight lets continue the calls the supervisor had received and
// not answered. Those it did answer are refused by the kernel, harmlessly.
func answerInFlight(l *seccomp.Listener, table *os.File) {
	ids, err := inflight.Pending(table)
	if err != nil {
		fmt.Fprintf(os.Stderr, "remocal: %v; a program may stay blocked in a system call\n", err)
		return
	}
	for _, id := range ids {
		l.Continue(id)
	}
}

// serve answers every notification with CONTINUE until no process is left.
func serve(l *seccomp.Listener) int {
	warned := false
	fds := []unix.PollFd{{Fd: int32(l.Fd()), Events: unix.POLLIN}}
	var n seccomp.Notif
	for {
		fds[0].Revents = 0
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return 1
		}
		if fds[0].Revents&unix.POLLIN == 0 {
			return 0 // POLLHUP: the last supervised process exited
		}
		if err := l.Receive(&n); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return 1
		}
		if !warned {
			fmt.Fprintln(os.Stderr, "remocal: the session ended while programs it started are still running; they continue with this machine's files and network")
			warned = true
		}
		if n.Data.Nr == seccomp.SysPrctl {
			l.Fail(n.ID, unix.EINVAL) // no longer supervised: the probe must say so
			continue
		}
		l.Continue(n.ID)
	}
}
