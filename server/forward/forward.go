// Package forward is `remocal daemon --stdio`, the process an IDE spawns: it
// attaches to the user's shared daemon, starting it if none runs (or
// restarting one of another version that has no sessions), and relays the
// IDE's JSON-RPC stream to it. Several IDE windows and scripts thus share one
// daemon and see the same sessions.
package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/remocal/remocal/internal/relay"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/daemonclient"
)

// Options configure Connect.
type Options struct {
	Socket string
	// Self and Version: the binary to start a daemon from, and the version
	// it must run.
	Self    string
	Version string
	// DaemonArgs are extra arguments for a daemon this starts (for example
	// --idle-timeout).
	DaemonArgs []string
	// StartTimeout bounds waiting for a started daemon to listen.
	StartTimeout time.Duration
}

// ErrVersionSkew means a daemon of another version runs sessions, so it
// cannot be replaced.
var ErrVersionSkew = errors.New("daemon version mismatch")

// Connect returns a connection to a daemon of this version.
func Connect(ctx context.Context, o Options) (net.Conn, error) {
	if o.StartTimeout == 0 {
		o.StartTimeout = 15 * time.Second
	}
	unlock, err := lock(o.Socket + ".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := ensureDaemon(ctx, o); err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, "unix", o.Socket)
}

// ensureDaemon makes sure a daemon of this version listens on the socket.
// It runs under the lock, so forwarders started together start one daemon.
func ensureDaemon(ctx context.Context, o Options) error {
	info, err := daemonInfo(ctx, o.Socket)
	if err == nil && info.Version == o.Version {
		return nil
	}
	if err == nil {
		if info.Sessions > 0 {
			return fmt.Errorf("%w: remocal daemon %s (pid %d) is running %d session(s), but this is remocal %s; stop its sessions (remocal sessions --daemon) or use the remocal that started it, then retry",
				ErrVersionSkew, info.Version, info.PID, info.Sessions, o.Version)
		}
		if err := stopDaemon(ctx, o.Socket, info.PID); err != nil {
			return fmt.Errorf("replace remocal daemon %s (pid %d) with %s: %w", info.Version, info.PID, o.Version, err)
		}
	}
	return startDaemon(ctx, o)
}

// daemonInfo asks a running daemon about itself (allowed before
// initialize).
func daemonInfo(ctx context.Context, socket string) (daemon.DaemonInfo, error) {
	var info daemon.DaemonInfo
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return info, err
	}
	c, err := daemonclient.New(ctx, nc, daemonclient.Options{Name: "remocal forwarder"})
	if err != nil {
		nc.Close()
		return info, err
	}
	defer c.Close()
	err = c.Call(ctx, daemon.MethodDaemonInfo, nil, &info)
	return info, err
}

func stopDaemon(ctx context.Context, socket string, pid int) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return err
	}
	c, err := daemonclient.New(ctx, nc, daemonclient.Options{Name: "remocal forwarder"})
	if err != nil {
		nc.Close()
		return err
	}
	err = c.Call(ctx, daemon.MethodDaemonShutdown, daemon.DaemonShutdownParams{}, nil)
	<-c.Done()
	if err != nil {
		return err
	}
	// Wait until the process is gone, so the new daemon can take the socket.
	for alive(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("old daemon (pid %d) did not exit", pid)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// startDaemon starts a daemon detached from this process (its own session,
// output to a log file beside the socket) and waits until it accepts.
func startDaemon(ctx context.Context, o Options) error {
	logPath := filepath.Join(filepath.Dir(o.Socket), "daemon.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open the daemon log: %w", err)
	}
	defer logf.Close()
	args := append([]string{"daemon", "--socket", o.Socket}, o.DaemonArgs...)
	cmd := exec.Command(o.Self, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the remocal daemon: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.NewTimer(o.StartTimeout)
	defer deadline.Stop()
	for delay := 5 * time.Millisecond; ; delay = min(delay*2, 200*time.Millisecond) {
		if c, err := net.Dial("unix", o.Socket); err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the remocal daemon exited at start (%v); see %s", err, logPath)
		case <-deadline.C:
			return fmt.Errorf("the remocal daemon did not listen on %s within %v; see %s", o.Socket, o.StartTimeout, logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// lock serialises daemon start-up between forwarders with an flock.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// Relay copies the IDE's stdio to the daemon connection and back until
// either side ends.
func Relay(conn net.Conn, in io.Reader, out io.Writer) error {
	done := make(chan error, 2)
	go func() {
		_, err := io.Copy(conn, in)
		relay.CloseWrite(conn)
		done <- err
	}()
	go func() {
		_, err := io.Copy(out, conn)
		done <- err
	}()
	// The IDE closing stdin ends the session's stream; the daemon closing
	// ends it too. Either way the forwarder is done.
	err := <-done
	conn.Close()
	return err
}

// alive reports whether pid runs; a zombie (exited, not yet reaped by its
// parent) has released the socket and counts as gone.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i < 0 || i+2 >= len(data) || data[i+2] != 'Z'
}
