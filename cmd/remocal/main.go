// Command remocal runs a local process as if it ran inside a remote target.
// One binary holds every part: the CLI, the agent that runs beside a target,
// the daemon that IDEs and scripts drive and its session hosts, and the
// launcher and keeper that interposition re-executes.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/remocal/remocal/internal/memtrim"
	"github.com/remocal/remocal/interpose/keeper"
	"github.com/remocal/remocal/interpose/launcher"
	"github.com/remocal/remocal/server/sessionhost"
)

func init() {
	// Keep the main goroutine on the main thread. `exec --join` execs the
	// program from the main goroutine, and Yama ties the session host's
	// permission to inspect the program (PR_SET_PTRACER) to the thread group
	// leader: an execve from any other thread frees the leader and drops it.
	runtime.LockOSThread()
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	// Launcher and keeper modes run before anything else: the launcher is
	// about to exec the user's program under the seccomp filter.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case launcher.Arg:
			os.Exit(launcher.Main(os.Args[2:]))
		case keeper.Arg:
			memtrim.ReleaseExecutable() // see below
			os.Exit(keeper.Main(os.Args[2:]))
		case sessionhost.Arg:
			memtrim.ReleaseExecutable() // see below
			os.Exit(sessionhost.Main(os.Args[2:]))
		}
	}
	// Package initialisation mapped ≈35 MiB of this binary that most
	// remocal processes never use again; they may run for hours beside the
	// developer's programs (docs/performance.md, "Memory of a session").
	// Best effort: a process that keeps them only uses more memory.
	memtrim.ReleaseExecutable()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "remocal",
		Short:         "Run a local process as if it ran inside a remote pod",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCmd(), newAgentCmd(), newExecCmd(), newLsCmd(), newVerifyConfigCmd(), newDaemonCmd(), newRPCCmd(), newSessionsCmd(),
		newOperatorCmd())
	if err := root.ExecuteContext(ctx); err != nil {
		var exit exitError
		if !errors.As(err, &exit) || !exit.silent {
			fmt.Fprintln(os.Stderr, "remocal:", err)
		}
		if errors.As(err, &exit) {
			os.Exit(exit.code)
		}
		os.Exit(1)
	}
}

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	err  error
	// silent: the status is the program's own; remocal has nothing to add.
	silent bool
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e exitError) Unwrap() error { return e.err }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of remocal and of its agent protocol",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "remocal %s (agent protocol %s)\n", version, agentProtocol())
			return nil
		},
	}
}
