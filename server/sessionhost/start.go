package sessionhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"go.lsp.dev/jsonrpc2"
	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
)

// Timeouts of the daemon side.
const (
	// StopTimeout bounds a graceful stop; the host is killed after it.
	StopTimeout = 20 * time.Second
	// stderrGrace bounds the wait for the host's standard error to reach
	// its end after the host exited (only the host holds it).
	stderrGrace = 5 * time.Second
)

// Host is a running session host process.
type Host struct {
	spec    Spec
	cmd     *exec.Cmd
	pid     int
	conn    jsonrpc2.Conn
	ready   Ready
	readyCh chan readyParams
	events  *queue[Event]
	tail    tail

	exited     chan struct{} // the process has been reaped
	stderrDone chan struct{} // its standard error reached EOF
	done       chan struct{} // exited, and everything of ours has finished

	mu       sync.Mutex
	stopping bool
	err      error
}

// Start runs a session host for spec and returns once the session is ready,
// or with the reason it could not start (an agent that cannot be reached, a
// target that does not exist, a bad configuration, a kernel that cannot
// interpose...), in which case no process is left. Failures the host
// reports are *daemon.Error values with the matching code. self is the
// remocal binary. onEvent, if set, receives the session's events in order,
// on a goroutine of its own; it is not called after Done is closed.
func Start(ctx context.Context, self string, spec Spec, onEvent func(Event)) (*Host, error) {
	if spec.Socket == "" {
		return nil, errors.New("session host: no socket path for programs to join through")
	}
	cfg := spec.Config
	if cfg == nil {
		cfg = &config.Config{}
	}
	rawConfig, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("session host: encode the configuration: %w", err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("session host: socketpair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "session-host-control"), os.NewFile(uintptr(fds[1]), "session-host-control")
	ctrl, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		theirs.Close()
		return nil, fmt.Errorf("session host: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		ctrl.Close()
		theirs.Close()
		return nil, err
	}
	logR, logW, err := os.Pipe()
	if err != nil {
		ctrl.Close()
		theirs.Close()
		errR.Close()
		errW.Close()
		return nil, err
	}

	cmd := exec.Command(self, Arg)
	cmd.Stderr = errW
	cmd.ExtraFiles = []*os.File{theirs, logW} // controlFD, logFD
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// The daemon's signals (a terminal's Ctrl-C) are not the session's.
		Setpgid: true,
		// The host closes its session when the daemon dies; its control
		// connection tells it too.
		Pdeathsig: syscall.SIGTERM,
	}
	h := &Host{spec: spec, cmd: cmd, readyCh: make(chan readyParams, 1), events: newQueue[Event](),
		exited: make(chan struct{}), stderrDone: make(chan struct{}), done: make(chan struct{})}
	started := make(chan error, 1)
	var waitErr error
	go func() {
		// The parent-death signal fires when the thread that started the
		// child exits, not the process: keep this thread for as long as
		// the host runs.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waitErr = cmd.Wait()
		close(h.exited)
	}()
	err = <-started
	// The host has its copies: only the host may hold its ends, so that
	// they reach EOF when it exits.
	theirs.Close()
	errW.Close()
	logW.Close()
	if err != nil {
		ctrl.Close()
		errR.Close()
		logR.Close()
		return nil, fmt.Errorf("start the session host %s: %w", self, err)
	}
	h.pid = cmd.Process.Pid
	log := spec.Log
	if log == nil {
		log = func(string) {}
	}
	go func() {
		defer close(h.stderrDone)
		defer errR.Close()
		readLines(errR, func(line string) {
			h.tail.add(line)
			log(line)
		})
	}()
	go func() {
		// Keepers write here and may outlive the host: this ends when the
		// last of them exits.
		defer logR.Close()
		readLines(logR, log)
	}()
	h.conn = jsonrpc2.NewConn(jsonrpc2.NewHeaderStream(ctrl))
	h.conn.Go(context.Background(), h.handle)
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		h.events.run(func(ev Event) {
			if onEvent != nil {
				onEvent(ev)
			}
		})
	}()
	go h.finish(&waitErr, delivered)

	fail := func(err error) (*Host, error) {
		h.kill()
		<-h.done
		return nil, err
	}
	err = h.conn.Notify(ctx, methodStart, startParams{
		ID: spec.ID, Target: spec.Target, WorkDir: spec.WorkDir, ClientName: spec.ClientName, Socket: spec.Socket,
		Config: rawConfig, Incoming: spec.Incoming, TransparentFirst: spec.TransparentFirst, Version: spec.Version,
		LibraryDir: spec.LibraryDir,
	})
	if err != nil {
		return fail(fmt.Errorf("session host: send the session to start: %w", err))
	}
	select {
	case p := <-h.readyCh:
		if p.Error != nil {
			return fail(&daemon.Error{Code: p.Error.Code, Message: p.Error.Message, Policy: p.Error.Policy})
		}
		if p.Ready == nil {
			return fail(errors.New("session host: ready without a result"))
		}
		h.ready = *p.Ready
		return h, nil
	case <-h.exited:
		<-h.done // everything it sent has been read
		select {
		case p := <-h.readyCh:
			if p.Error != nil {
				return nil, &daemon.Error{Code: p.Error.Code, Message: p.Error.Message, Policy: p.Error.Policy}
			}
		default:
		}
		return nil, fmt.Errorf("the session host exited before the session was ready: %w", h.Err())
	case <-ctx.Done():
		return fail(fmt.Errorf("start the session: %w", ctx.Err()))
	}
}

// finish runs once the process has exited: it records why, waits for the
// rest, and closes done.
func (h *Host) finish(waitErr *error, delivered <-chan struct{}) {
	<-h.exited
	select {
	case <-h.stderrDone:
	case <-time.After(stderrGrace):
	}
	h.mu.Lock()
	if !h.stopping {
		h.err = h.exitError(*waitErr)
	}
	h.mu.Unlock()
	// Read what the host sent before it exited (its ready message, last
	// events) up to EOF, then close.
	select {
	case <-h.conn.Done():
	case <-time.After(stderrGrace):
	}
	h.conn.Close()
	h.events.close()
	<-delivered
	// A host that was killed could not remove its socket.
	if fi, err := os.Lstat(h.spec.Socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(h.spec.Socket)
	}
	close(h.done)
}

// exitError explains an exit nobody asked for.
func (h *Host) exitError(waitErr error) error {
	reason := h.tail.reason()
	suffix := ""
	if reason != "" {
		suffix = ": " + reason
	}
	st := h.cmd.ProcessState
	if st == nil {
		return fmt.Errorf("session host (pid %d): %v%s", h.pid, waitErr, suffix)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Errorf("session host (pid %d) was killed by signal %d (%v)%s", h.pid, int(ws.Signal()), ws.Signal(), suffix)
	}
	if code := st.ExitCode(); code != 0 {
		return fmt.Errorf("session host (pid %d) exited with status %d%s", h.pid, code, suffix)
	}
	return fmt.Errorf("session host (pid %d) exited unexpectedly%s", h.pid, suffix)
}

func (h *Host) kill() {
	select {
	case <-h.exited:
	default:
		h.cmd.Process.Signal(syscall.SIGKILL)
	}
}

// handle serves the host's notifications. It never returns an error for
// one: that would end the connection.
func (h *Host) handle(ctx context.Context, req *jsonrpc2.Request) (any, error) {
	switch req.Method() {
	case methodReady:
		var p readyParams
		if err := jsonrpc2.DefaultCodec.Unmarshal(req.Params(), &p); err != nil {
			p = readyParams{Error: &hostError{Code: daemon.CodeInternal, Message: "session host: bad ready message: " + err.Error()}}
		}
		select {
		case h.readyCh <- p:
		default:
		}
	case methodEvent:
		var ev Event
		if err := jsonrpc2.DefaultCodec.Unmarshal(req.Params(), &ev); err == nil {
			h.events.push(ev)
		}
	default:
		if req.IsCall() {
			return nil, jsonrpc2.ErrMethodNotFound
		}
	}
	return nil, nil
}

// Ready is what the session offers programs.
func (h *Host) Ready() Ready { return h.ready }

// PID is the host process's.
func (h *Host) PID() int { return h.pid }

// Done is closed once the host process has exited and been reaped.
func (h *Host) Done() <-chan struct{} { return h.done }

// Err says why the host exited: nil while it runs and after a requested
// stop; otherwise "session host (pid N) was killed by signal 9 (killed)",
// "... exited with status 2: <its last message>".
func (h *Host) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Detail asks the host what the session is doing.
func (h *Host) Detail(ctx context.Context) (Detail, error) {
	var d Detail
	select {
	case <-h.exited:
		return d, h.goneError()
	default:
	}
	if _, err := h.conn.Call(ctx, methodDetail, nil, &d); err != nil {
		select {
		case <-h.exited:
			return d, h.goneError()
		default:
		}
		return d, fmt.Errorf("session host (pid %d): %w", h.pid, err)
	}
	return d, nil
}

func (h *Host) goneError() error {
	<-h.done
	if err := h.Err(); err != nil {
		return err
	}
	return fmt.Errorf("session host (pid %d) has stopped", h.pid)
}

// Stop ends the session gracefully: the host closes it (supervisors stop,
// keepers take over programs still running, subscriptions end, an agent it
// started exits) and exits. If it has not exited when ctx is done, or after
// StopTimeout, it is killed. Stop returns once the host is gone.
//
// No context is derived from ctx: a jsonrpc2 request context must not be
// the parent of one that may outlive its handler (context's cancellation
// propagation would touch it after the request was recycled).
func (h *Host) Stop(ctx context.Context) error {
	h.mu.Lock()
	select {
	case <-h.exited:
	default:
		h.stopping = true
	}
	h.mu.Unlock()
	callCtx, cancelCall := context.WithCancel(context.Background())
	defer cancelCall()
	go func() {
		// The host acknowledges, closes the session and exits: the exit is
		// what tells that it is over. The call ends with the answer, the
		// host's exit, or Stop's return.
		h.conn.Call(callCtx, methodStop, nil, nil)
	}()
	timer := time.NewTimer(StopTimeout)
	defer timer.Stop()
	var why error
	select {
	case <-h.exited:
		<-h.done
		return nil
	case <-ctx.Done():
		why = ctx.Err()
	case <-timer.C:
		why = fmt.Errorf("not gone after %v", StopTimeout)
	}
	h.kill()
	<-h.done
	return fmt.Errorf("session host (pid %d) did not stop in time (%v); killed it", h.pid, why)
}
