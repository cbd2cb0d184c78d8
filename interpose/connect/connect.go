// Package connect reaches the agent that serves a target. Each kind of
// target brings its own way there: a local process gets an agent started on
// this machine; an address names an agent that already runs. Kubernetes
// targets add a port-forward to an agent in the cluster.
package connect

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/remocal/remocal/agent/client"
)

// Connector reaches an agent.
type Connector interface {
	// Connect returns a client of the agent, and a function that releases
	// what Connect set up (an agent it started). Describe names the target
	// for messages.
	Connect(ctx context.Context, opts client.Options) (*client.Client, func(), error)
	Describe() string
}

// Options for For.
type Options struct {
	// Self is the remocal binary, used to start local agents.
	Self string
	// AgentAddress connects to a running agent instead of starting one.
	AgentAddress string
	IdleTTL      time.Duration
	// Stderr receives the agent's warnings.
	Stderr io.Writer
}

// For returns the connector for a target reference.
func For(target string, o Options) (Connector, error) {
	if o.AgentAddress != "" {
		return Address{Addr: o.AgentAddress, Target: target}, nil
	}
	kind, rest, _ := strings.Cut(target, "/")
	switch kind {
	case "":
		return nil, errors.New("no target: pass --target pid/PID (or set \"target\" in .remocal/config.json)")
	case "pid":
		pid, err := strconv.Atoi(rest)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("target %q: expected pid/<process id>, for example pid/1234", target)
		}
		return &LocalPID{PID: pid, Self: o.Self, IdleTTL: o.IdleTTL, Stderr: o.Stderr}, nil
	case "pod", "deployment", "statefulset", "replicaset", "job", "cronjob", "service", "targetless":
		return nil, fmt.Errorf("target %q: Kubernetes targets are not available in this version yet; use pid/PID for a local process", target)
	}
	return nil, fmt.Errorf("target %q: unknown kind %q; use pid/PID", target, kind)
}

// Address is an agent already listening somewhere.
type Address struct {
	Addr   string
	Target string
}

func (a Address) Describe() string {
	if a.Target != "" {
		return a.Target
	}
	return "agent at " + a.Addr
}

// Connect dials the agent.
func (a Address) Connect(ctx context.Context, opts client.Options) (*client.Client, func(), error) {
	c, err := client.Dial(ctx, a.Addr, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach the agent at %s: %w", a.Addr, err)
	}
	return c, func() { c.Close() }, nil
}

// LocalPID is a process on this machine; Connect starts an agent for it,
// which needs root (it enters the process's network namespace).
type LocalPID struct {
	PID     int
	Self    string
	IdleTTL time.Duration
	Stderr  io.Writer
}

func (l *LocalPID) Describe() string { return fmt.Sprintf("pid/%d", l.PID) }

const agentStartTimeout = 15 * time.Second

// Connect starts `remocal agent` for the process and connects to it. The
// agent dies with this process (PDEATHSIG) and otherwise exits when the
// session closes or its target does.
func (l *LocalPID) Connect(ctx context.Context, opts client.Options) (*client.Client, func(), error) {
	if err := syscall.Kill(l.PID, 0); errors.Is(err, syscall.ESRCH) {
		return nil, nil, fmt.Errorf("target pid/%d: no such process", l.PID)
	}
	dir, err := os.MkdirTemp("", "remocal-agent-")
	if err != nil {
		return nil, nil, err
	}
	sock := filepath.Join(dir, "agent.sock")
	ttl := l.IdleTTL
	if ttl <= 0 {
		ttl = time.Minute
	}
	cmd := exec.Command(l.Self, "agent", "--target-pid", strconv.Itoa(l.PID), "--listen", "unix:"+sock,
		"--idle-ttl", ttl.String(), "--log-level", "warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	var early bytes.Buffer
	errw := &switchWriter{buf: &early, to: l.Stderr}
	cmd.Stderr = errw
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("start the agent for pid/%d: %w", l.PID, err)
	}
	waited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(waited)
	}()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-waited
		}
		os.RemoveAll(dir)
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && !strings.HasPrefix(line, "remocal-agent listening on ") {
			err = fmt.Errorf("unexpected agent output %q", line)
		}
		ready <- err
		io.Copy(io.Discard, stdout)
	}()
	timer := time.NewTimer(agentStartTimeout)
	defer timer.Stop()
	select {
	case err = <-ready:
	case <-timer.C:
		err = fmt.Errorf("timed out after %v", agentStartTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("the agent for pid/%d did not start (%v): %s", l.PID, err, strings.TrimSpace(early.String()))
	}
	errw.release()
	c, err := client.Dial(ctx, "unix:"+sock, opts)
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("connect to the agent for pid/%d: %w", l.PID, err)
	}
	return c, func() { c.Close(); stop() }, nil
}

// switchWriter buffers the agent's stderr until it is up, so a failed start
// can be reported in one message, then passes it through.
type switchWriter struct {
	mu       sync.Mutex
	buf      *bytes.Buffer
	to       io.Writer
	released bool
}

func (w *switchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.released && w.to != nil {
		return w.to.Write(p)
	}
	return w.buf.Write(p)
}

func (w *switchWriter) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.released = true
}
