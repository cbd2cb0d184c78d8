// Package connect reaches the agent that serves a target. Each kind of
// target brings its own way there: a local process gets an agent started on
// this machine; an address names an agent that already runs. Kubernetes
// targets are reached by the Kubernetes package (kube.NewConnector), which
// callers hand to For as Options.Cluster, so that interposition never
// depends on a cluster client.
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
	"syscall"
	"time"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/netns"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/wire"
)

// Connector reaches an agent.
type Connector interface {
	// Connect returns a client of the agent, and a function that releases
	// what Connect set up (an agent it started). Describe names the target
	// for messages.
	Connect(ctx context.Context, opts agentclient.Options) (*agentclient.Client, func(), error)
	Describe() string
}

// Redialer is a Connector whose connection can drop while its agent keeps
// running (a Kubernetes port-forward): Redial connects to the same agent
// again, trying for up to patience, or to the agent of the target's new
// container when the target itself was replaced. The session subscribes
// its ports again either way.
type Redialer interface {
	Redial(ctx context.Context, opts agentclient.Options, patience time.Duration) (*agentclient.Client, func(), error)
}

// Peer is a Connector that names what its connection reaches, for the
// messages about the connection dropping and coming back ("the operator
// (session s-…)"); without it they say "the agent".
type Peer interface {
	Peer() string
}

// Options for For.
type Options struct {
	// Self is the remocal binary, used to start local agents.
	Self string
	// AgentAddress connects to a running agent instead of starting one.
	AgentAddress string
	// AgentSecretFile holds that agent's key (what it was started with,
	// --secret-file); AgentInsecure accepts an agent on TCP that proves
	// nothing. Neither comes from a repository's configuration, which must
	// not be able to send a session to an unauthenticated agent.
	AgentSecretFile string
	AgentInsecure   bool
	// Stderr receives the agent's warnings and, for Kubernetes targets,
	// progress (which pod was chosen, the agent starting).
	Stderr io.Writer

	// Kube selects the cluster for Kubernetes targets, like kubectl's
	// flags; Agent is the configuration's agent section with its defaults
	// applied (config.WithDefaults); Version picks the default agent image
	// (the client's own version).
	Kube    config.Kubernetes
	Agent   config.Agent
	Version string
	// Operator says whether Kubernetes targets go through the cluster's
	// operator (config.Config.Operator; "" is auto).
	Operator config.OperatorMode

	// Cluster makes the connector of a Kubernetes target (ref as
	// config.Target.String spells it); nil refuses Kubernetes targets.
	Cluster func(ref string, o Options) (Connector, error)
}

// ErrTargetNotFound is the category of errors saying that the target does
// not exist or runs nothing a session could use (no such process, no such
// pod, no running container). errors.Is finds it in errors marked by
// TargetNotFound.
var ErrTargetNotFound = errors.New("target not found")

// TargetNotFound marks err as ErrTargetNotFound, keeping its message.
func TargetNotFound(err error) error { return &notFound{err} }

type notFound struct{ err error }

func (e *notFound) Error() string        { return e.err.Error() }
func (e *notFound) Unwrap() error        { return e.err }
func (e *notFound) Is(target error) bool { return target == ErrTargetNotFound }

// For returns the connector for a target reference.
func For(target string, o Options) (Connector, error) {
	if o.AgentAddress != "" {
		return Address{Addr: o.AgentAddress, Target: target, SecretFile: o.AgentSecretFile, Insecure: o.AgentInsecure}, nil
	}
	kind, rest, _ := strings.Cut(target, "/")
	switch kind {
	case "":
		// A missing setting: the configuration's category.
		return nil, &config.Error{Problems: []config.Problem{{Path: "$.target",
			Message: "no target: pass --target pid/PID (or set \"target\" in .remocal/config.json)"}}}
	case "pid":
		pid, err := strconv.Atoi(rest)
		if err != nil || pid <= 0 {
			return nil, &config.Error{Problems: []config.Problem{{Path: "$.target",
				Message: fmt.Sprintf("got %q, expected pid/<process id>, for example pid/1234", target)}}}
		}
		return &LocalPID{PID: pid, Self: o.Self, IdleTTL: time.Duration(o.Agent.IdleTTL), Stderr: o.Stderr}, nil
	}
	t, err := config.ParseTarget(target)
	if err != nil {
		return nil, fmt.Errorf("target %v", err)
	}
	if o.Cluster == nil {
		return nil, fmt.Errorf("target %s is a Kubernetes target, which this program cannot reach", target)
	}
	return o.Cluster(t.String(), o)
}

// Address is an agent already listening somewhere. Over TCP it must prove
// the key in SecretFile, unless Insecure; over a unix socket it may hold no
// key (the socket's permissions guard it).
type Address struct {
	Addr       string
	Target     string
	SecretFile string
	Insecure   bool
}

func (a Address) Describe() string {
	if a.Target != "" {
		return a.Target
	}
	return "agent at " + a.Addr
}

// Connect dials the agent.
func (a Address) Connect(ctx context.Context, opts agentclient.Options) (*agentclient.Client, func(), error) {
	if a.SecretFile != "" {
		data, err := os.ReadFile(a.SecretFile)
		if err != nil {
			return nil, nil, fmt.Errorf("read the agent's key: %w", err)
		}
		if opts.Key, err = wire.ParseKey(data); err != nil {
			return nil, nil, fmt.Errorf("the agent's key in %s: %w", a.SecretFile, err)
		}
	}
	opts.Unauthenticated = a.Insecure && opts.Key == nil
	c, err := agentclient.Dial(ctx, a.Addr, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach the agent at %s: %w", a.Addr, err)
	}
	return c, func() { c.Close() }, nil
}

// LocalPID is a process on this machine. Its agent is shared: every
// session on the same process, from `remocal exec` or the daemon, uses one
// agent, so that the agent sees all their subscriptions and can refuse
// conflicting ones. The first session starts it (detached, at a socket named
// after the process); it exits after IdleTTL without clients or when the
// process exits. Starting it needs root: it enters the process's network
// namespace.
type LocalPID struct {
	PID     int
	Self    string
	IdleTTL time.Duration
	Stderr  io.Writer

	start uint64 // the process's start time, known once connected
}

// LocalNetwork is a Connector whose target is a process on this machine:
// TargetNetwork opens the target's network namespace, so that the session
// can make sockets there itself (outgoing connections handed to the
// program already connected, instead of relayed through the agent).
type LocalNetwork interface {
	TargetNetwork() (*netns.NS, error)
}

// TargetNetwork opens the network namespace of the process the agent
// serves: after Connect, and only while it is that process (same start
// time), never a process that got its PID since. It needs what the agent
// needs to enter it (root, or CAP_SYS_ADMIN and CAP_SYS_PTRACE).
func (l *LocalPID) TargetNetwork() (*netns.NS, error) {
	if l.start == 0 {
		return nil, fmt.Errorf("target pid/%d: not connected", l.PID)
	}
	ns, err := netns.OfPID(l.PID)
	if err != nil {
		return nil, err
	}
	// Read after the open: the same start time proves it opened the
	// namespace of the process the agent serves.
	if start, err := processStart(l.PID); err != nil || start != l.start {
		ns.Close()
		return nil, TargetNotFound(fmt.Errorf("target pid/%d exited", l.PID))
	}
	return ns, nil
}

func (l *LocalPID) Describe() string { return fmt.Sprintf("pid/%d", l.PID) }

const agentStartTimeout = 15 * time.Second

// localStreamWindow is the stream window toward a local agent: yamux's
// smallest. The agent is a unix socket away, so a window of any size is
// refilled at once and a larger one buys no speed; but when the program
// reads slower than the agent sends (a download), each stream buffers up
// to its window in the supervisor. With the default 4 MiB (sized for a
// Kubernetes round trip) a 256 MiB download grew the supervisor by ≈24 MiB
// of PSS; with 256 KiB by ≈1.5 MiB, at the same speed (docs/performance.md,
// "Memory of a session").
const localStreamWindow = 256 << 10

// Connect connects to the process's agent, starting it if none runs.
func (l *LocalPID) Connect(ctx context.Context, opts agentclient.Options) (*agentclient.Client, func(), error) {
	opts.StreamWindow = localStreamWindow
	start, err := processStart(l.PID)
	if err != nil {
		return nil, nil, TargetNotFound(fmt.Errorf("target pid/%d: no such process", l.PID))
	}
	l.start = start
	dir, err := RuntimeDir()
	if err != nil {
		return nil, nil, err
	}
	dir = filepath.Join(dir, "agents")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	// The start time tells a recycled PID from the process the agent serves.
	base := filepath.Join(dir, fmt.Sprintf("pid-%d-%d", l.PID, start))
	sock := base + ".sock"
	unlock, err := flock(base + ".lock")
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	if c, err := agentclient.Dial(ctx, "unix:"+sock, opts); err == nil {
		return c, func() { c.Close() }, nil
	}
	if err := l.startAgent(ctx, sock, base+".log"); err != nil {
		return nil, nil, err
	}
	c, err := agentclient.Dial(ctx, "unix:"+sock, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the agent for pid/%d: %w", l.PID, err)
	}
	return c, func() { c.Close() }, nil
}

// startAgent starts a detached agent and waits until it listens.
func (l *LocalPID) startAgent(ctx context.Context, sock, logPath string) error {
	ttl := l.IdleTTL
	if ttl <= 0 {
		ttl = time.Minute
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(l.Self, "agent", "--target-pid", strconv.Itoa(l.PID), "--listen", "unix:"+sock,
		"--idle-ttl", ttl.String(), "--log-level", "warn")
	// Its own session: it serves whoever connects next, after the session
	// that started it is gone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the agent for pid/%d: %w", l.PID, err)
	}
	go cmd.Wait() // reaped whenever it exits
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
		cmd.Process.Kill()
		msg, _ := os.ReadFile(logPath)
		return fmt.Errorf("the agent for pid/%d did not start (%v): %s", l.PID, err, strings.TrimSpace(string(msg)))
	}
	return nil
}

// processStart returns a process's start time (clock ticks after boot),
// which with the PID identifies it for good.
func processStart(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(fields) < 20 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

func flock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// RuntimeDir is the per-user directory for remocal's sockets: the daemon's,
// sessions', shared agents': $XDG_RUNTIME_DIR/remocal, or
// /tmp/remocal-<uid>. It is created 0700 and must be a directory the user
// owns that nobody else can write to, since whoever can connect to those
// sockets can run programs in the user's sessions.
func RuntimeDir() (string, error) {
	base := os.Getenv("XDG_RUNTIME_DIR")
	dir := filepath.Join(base, "remocal")
	if base == "" {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("remocal-%d", os.Getuid()))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create runtime directory %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("runtime directory %s must be a directory owned by you with mode 0700 (found %v); remove it and retry", dir, fi.Mode())
	}
	return dir, nil
}
