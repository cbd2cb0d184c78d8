package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/remocal/remocal/interpose/launcher"
	"github.com/remocal/remocal/interpose/session"
)

// runJoin is `remocal exec --join SOCKET -- CMD ARGS`: CMD joins a session
// that already runs (one the daemon started for an IDE) instead of getting
// one of its own. This process becomes CMD: it hands the session a seccomp
// listener, as the LD_PRELOAD bootstrap library would, then execs CMD from
// the same thread, so static binaries and everything CMD starts are
// supervised too.
//
// --transparent-first says what the session was started for: the session
// decides which process stays transparent (the first to join a session
// started with TransparentFirst), since the handoff carries no options.
func runJoin(socket string, argv []string) error {
	path, err := exec.LookPath(argv[0])
	if errors.Is(err, exec.ErrDot) {
		err = nil
	}
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			err = fmt.Errorf("%q is not in PATH", argv[0])
		}
		return exitError{code: 127, err: err}
	}
	if launcher.Supervised() && os.Getenv(session.SocketEnv) != socket {
		// Not the bootstrap library joining this very session as remocal
		// started: a session supervises this process already, and filters
		// never stack.
		fmt.Fprintf(os.Stderr, "remocal: this process runs in another remocal session already; %s runs in that one, not in the session at %s\n", argv[0], socket)
	}
	err = launcher.Join(socket, path, argv)
	var execErr *launcher.ExecError
	switch {
	case errors.Is(err, launcher.ErrNoSession):
		return fmt.Errorf("%w; start the session first (from the IDE, or with the daemon's remocal/session/start), or give the program a session of its own with remocal exec --target TARGET -- %s", err, argv[0])
	case errors.As(err, &execErr):
		if errors.Is(execErr.Err, syscall.ENOENT) {
			return exitError{code: 127, err: err}
		}
		return exitError{code: 126, err: err}
	}
	return fmt.Errorf("join the session at %s: %w", socket, err)
}
