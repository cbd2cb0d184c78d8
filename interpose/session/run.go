package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/handoff"
	"github.com/remocal/remocal/interpose/internal/inflight"
	"github.com/remocal/remocal/interpose/internal/seccomp"
	"github.com/remocal/remocal/interpose/keeper"
	"github.com/remocal/remocal/interpose/launcher"
)

// Stdio are a program's standard streams.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// ErrNotFound means the program to run does not exist.
var ErrNotFound = errors.New("program not found")

const handoffTimeout = 10 * time.Second

// Run runs argv under supervision and returns its exit status (128+N when
// killed by signal N). SIGINT, SIGTERM and SIGHUP sent to remocal are passed
// on to the program.
func (s *Session) Run(ctx context.Context, argv []string, stdio Stdio) (int, error) {
	if len(argv) == 0 {
		return 2, errors.New("no program to run")
	}
	env := s.Environ(os.Environ())
	path, err := lookPath(argv[0], env)
	if err != nil {
		return 127, err
	}
	parent, child, err := socketPair()
	if err != nil {
		return 1, err
	}
	defer parent.Close()
	cmd := exec.Command(s.opts.Self)
	cmd.Args = launcher.Args(s.opts.Self, 3, path, argv)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.In, stdio.Out, stdio.Err
	cmd.ExtraFiles = []*os.File{child}
	if err := cmd.Start(); err != nil {
		child.Close()
		return 1, fmt.Errorf("start the launcher: %w", err)
	}
	child.Close()
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	abort := func(err error) (int, error) {
		cmd.Process.Kill()
		<-exited
		return 1, err
	}

	transparent := 0
	if s.opts.TransparentFirst {
		transparent = cmd.Process.Pid
	}
	sup, err := s.newSupervisor(path, transparent)
	if err != nil {
		return abort(err)
	}
	res, err := handoff.Offer(parent, s.filter(), handoffTimeout)
	if err != nil {
		return abort(err)
	}
	keeperDone, table, err := startKeeper(s.opts.Self, res.Listener)
	if err != nil {
		res.Listener.Close()
		return abort(err)
	}
	s.mu.Lock()
	s.keepers = append(s.keepers, keeperDone)
	s.mu.Unlock()
	sup.Serve(res.Listener, table)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for {
		select {
		case sig := <-sigs:
			// A terminal's Ctrl-C reaches the program directly (same
			// process group); remocal stays until the program exits so
			// that it can clean up after it.
			if sig != syscall.SIGINT {
				cmd.Process.Signal(sig)
			}
		case <-ctx.Done():
			cmd.Process.Signal(syscall.SIGTERM)
			<-exited
			return exitStatus(cmd, waitErr), ctx.Err()
		case <-s.aborted:
			// A port the program wants is held (onConflict: abort).
			cmd.Process.Signal(syscall.SIGTERM)
			<-exited
			return exitStatus(cmd, waitErr), s.AbortErr()
		case <-exited:
			return exitStatus(cmd, waitErr), nil
		}
	}
}

func exitStatus(cmd *exec.Cmd, err error) int {
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	if cmd.ProcessState != nil {
		return cmd.ProcessState.ExitCode()
	}
	return 1
}

// lookPath resolves a program the way a shell would, with the PATH the
// program will get.
func lookPath(name string, env []string) (string, error) {
	path := ""
	for _, kv := range env {
		if v, ok := cutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	if containsSlash(name) {
		if _, err := os.Stat(name); err != nil {
			return "", fmt.Errorf("%w: %s: %v", ErrNotFound, name, err)
		}
		return name, nil
	}
	for _, dir := range splitPath(path) {
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %q is not in PATH (%s)", ErrNotFound, name, path)
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

func splitPath(p string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == ':' {
			dir := p[start:i]
			if dir == "" {
				dir = "."
			}
			out = append(out, dir)
			start = i + 1
		}
	}
	return out
}

// socketPair returns the supervisor's end as a *net.UnixConn and the
// launcher's as a file to inherit.
func socketPair() (*net.UnixConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	pf := os.NewFile(uintptr(fds[0]), "handoff")
	defer pf.Close()
	conn, err := net.FileConn(pf)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return conn.(*net.UnixConn), os.NewFile(uintptr(fds[1]), "handoff-child"), nil
}

// startKeeper starts the keeper with a copy of the listener and returns a
// function that releases it: it then serves any programs still running,
// and exits once none is left. The table, shared with the keeper, is where
// the supervisor records the notifications it has not answered yet.
func startKeeper(self string, l *seccomp.Listener) (func(), *inflight.Table, error) {
	table, err := inflight.New()
	if err != nil {
		return nil, nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		table.Close()
		return nil, nil, err
	}
	_, err = keeper.Start(self, l.File(), r, table.File(), os.Stderr)
	r.Close()
	if err != nil {
		w.Close()
		table.Close()
		return nil, nil, err
	}
	return func() { w.Close() }, table, nil
}
