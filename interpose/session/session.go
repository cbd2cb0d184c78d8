// Package session is the runtime of one remocal session: it reaches the
// agent, computes the environment, and runs programs under a supervisor
// whose rules come from the configuration. `remocal exec` runs one session
// per invocation; the daemon runs many.
package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/conc"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/netns"
	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/interpose/internal/rules"
	"github.com/remocal/remocal/interpose/internal/seccomp"
	"github.com/remocal/remocal/interpose/internal/supervisor"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/glob"
	"github.com/remocal/remocal/protocol/wire"
)

// Event is what a session's supervisors and its agent connection report
// (their messages on Stderr, as data) to OnEvent.
type Event = supervisor.Event

// Options configure a session.
type Options struct {
	Connector connect.Connector
	// Config is the user's configuration; defaults are applied here.
	Config *config.Config
	// ClientName tells other users who holds a port ("alice@laptop").
	ClientName string
	Version    string
	// Self is the remocal binary, re-executed as launcher and keeper.
	Self string
	// WorkDir stays local, as does $HOME: the project being run.
	WorkDir string
	// TransparentFirst leaves the first process's own system calls alone
	// and intercepts its descendants (a debugger that starts the program):
	// the program Run starts, and the first program that joins through
	// ServeBootstrap.
	TransparentFirst bool
	Stderr           io.Writer
	// OnEvent, if set, is given to every supervisor of the session (see
	// supervisor.Config.OnEvent); the session adds the agent connection's
	// events (EventAgentLost, EventAgentReconnected, EventAgentGone) and
	// EventWarning for
	// programs that could not join. It must return quickly.
	OnEvent func(Event)
	Logger  *slog.Logger
}

// Session is a connection to a target and what is needed to run programs
// in its context.
type Session struct {
	opts       Options
	cfg        *config.Config
	clientOpts agentclient.Options
	// ctx ends when Close begins: the link stops watching.
	ctx    context.Context
	cancel context.CancelFunc
	remote map[string]string // the target's variables the program gets
	host   string
	// targetless: the agent serves only its own network (no environment,
	// no incoming traffic), so only the resolver files are remote.
	targetless bool
	out        *rules.Outgoing
	// targetNet makes sockets in a local target's network namespace for
	// outgoing connections handed to programs; nil: they are relayed.
	targetNet *netns.Thread
	targetNS  *netns.NS

	mu sync.Mutex
	// client and release change when a dropped connection is made again.
	client      *agentclient.Client
	release     func()
	supervisors []*supervisor.Supervisor
	// keepers release each keeper; only after the supervisors stopped, or
	// both would answer the same listener.
	keepers   []func()
	listeners []net.Listener // bootstrap sockets
	// splits are the queue splits the operator granted (queues.go).
	splits []wire.QueueSplitResult
	// joined is set once a program has joined through a bootstrap
	// socket: only the first may be transparent.
	joined bool
	wg     conc.WaitGroup

	// aborted is closed when the session must end (abortErr says why): a
	// port is held by another session and onConflict is abort.
	aborted   chan struct{}
	abortErr  error
	abortOnce sync.Once
}

// ConflictError is why a session ended under onConflict abort: a port the
// program listens on is held by another session (Holder says whose).
type ConflictError = supervisor.ConflictError

// Aborted is closed when the session must end; AbortErr says why. Run
// stops its program then; other hosts of the session (the daemon's)
// end it themselves.
func (s *Session) Aborted() <-chan struct{} { return s.aborted }

// AbortErr says why the session was aborted, once Aborted is closed.
func (s *Session) AbortErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.abortErr
}

func (s *Session) abort(err error) {
	s.abortOnce.Do(func() {
		s.mu.Lock()
		s.abortErr = err
		s.mu.Unlock()
		close(s.aborted)
	})
}

// ErrUnsupported wraps kernel feature problems.
var ErrUnsupported = errors.New("interposition unsupported")

// Start checks the kernel, reaches the agent and prepares the rules.
func Start(ctx context.Context, opts Options) (*Session, error) {
	if err := seccomp.Check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	if opts.Config == nil {
		opts.Config = &config.Config{}
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := opts.Config.WithDefaults()
	var self atomic.Pointer[Session] // for events that arrive before Start returns
	copts := agentclient.Options{Name: opts.ClientName, Version: opts.Version, Logger: opts.Logger, Session: newSessionID(),
		OnEvent: func(ev wire.Event) { serverEvent(opts, &self, ev) }}
	c, release, err := opts.Connector.Connect(ctx, copts)
	if err != nil {
		return nil, err
	}
	s := &Session{opts: opts, cfg: cfg, clientOpts: copts, client: c, release: release, aborted: make(chan struct{})}
	self.Store(s)
	if err := s.prepare(ctx); err != nil {
		release()
		return nil, err
	}
	if ln, ok := opts.Connector.(connect.LocalNetwork); ok {
		s.openTargetNetwork(ln)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Go(s.link)
	return s, nil
}

// openTargetNetwork prepares a thread in a local target's network
// namespace. Without one (no right to enter it: remocal is not root)
// outgoing connections go through the agent, which works as well, only
// slower.
func (s *Session) openTargetNetwork(ln connect.LocalNetwork) {
	ns, err := ln.TargetNetwork()
	if err == nil {
		s.targetNet, err = ns.Thread()
		if err != nil {
			ns.Close()
		} else {
			s.targetNS = ns
		}
	}
	if err != nil {
		s.opts.Logger.Debug("outgoing connections are relayed through the agent", "err", err)
		return
	}
	s.opts.Logger.Debug("outgoing TCP connections are made in the target's network namespace", "netns", ns.Path())
}

// newSessionID names a session to its agent, so that a reconnection is
// recognised as the same session.
func newSessionID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Session) prepare(ctx context.Context) error {
	s.targetless = !wire.HasCapability(s.client.Welcome().Capabilities, wire.CapEnv)
	vars := map[string]string{}
	if !s.targetless {
		var err error
		if vars, err = s.client.Env(ctx, s.cfg.Env.Include, s.cfg.Env.Exclude); err != nil {
			return fmt.Errorf("read the environment of %s: %w", s.opts.Connector.Describe(), err)
		}
	}
	if err := s.splitQueues(ctx, vars); err != nil {
		return err
	}
	for k, v := range s.cfg.Env.Override {
		vars[k] = v
	}
	s.remote = vars
	if *s.cfg.Hostname && !s.targetless {
		s.host = s.client.Welcome().Target.Hostname
	}
	o := s.cfg.Network.Outgoing
	var resolve rules.Resolver
	if len(o.Filter.Remote)+len(o.Filter.Local) > 0 {
		res, err := s.client.Resolver(ctx)
		if err != nil {
			return err
		}
		resolve = func(host string) ([]netip.Addr, error) { return res.LookupHost(ctx, host) }
	}
	var err error
	s.out, err = rules.NewOutgoing(rules.OutgoingOptions{
		TCP: *o.TCP, UDP: *o.UDP, IgnoreLocalhost: *o.IgnoreLocalhost,
		Remote: o.Filter.Remote, Local: o.Filter.Local,
	}, resolve)
	if err != nil {
		return err
	}
	return nil
}

// Client is the current agent connection.
func (s *Session) Client() *agentclient.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
}

// Target names the target.
func (s *Session) Target() string { return s.opts.Connector.Describe() }

// Config is the session's configuration, with its defaults applied.
func (s *Session) Config() *config.Config { return s.cfg }

// shellEnv are variables that describe this machine and the user's shell
// rather than the application; the target's values would break the local
// program (PATH, HOME) or the terminal.
var shellEnv = glob.NewSelector([]string{
	"PATH;HOME;USER;LOGNAME;SHELL;TERM;COLORTERM;PWD;OLDPWD;SHLVL;TMPDIR;LANG;LANGUAGE;LC_*;DISPLAY;WAYLAND_DISPLAY;XDG_*;SSH_*;_",
}, nil)

// toolchainEnv are variables that make this machine's programs run or load
// code (the dynamic loader, shells, interpreters' startup options) or say
// where this machine's toolchain lives. The target's values describe the
// target's image: PYTHONHOME=/usr breaks a pyenv or venv python, and
// BASH_ENV or NODE_OPTIONS from the target would run code named by the
// remote side in every local shell or node. remocal exec names those it
// left out (KeptLocal); an exact name in env.include takes the target's.
var toolchainEnv = glob.NewSelector([]string{
	// the dynamic loader and the C library
	"LD_*;GCONV_PATH;GLIBC_TUNABLES;HOSTALIASES;LOCPATH;NLSPATH",
	// shells
	"BASH_ENV;ENV;BASH_FUNC_*;PROMPT_COMMAND;PS4;SHELLOPTS;BASHOPTS",
	// interpreters and runtimes
	"PYTHONHOME;PYTHONPATH;PYTHONSTARTUP;PYTHONUSERBASE;PYTHONEXECUTABLE;PYTHONPLATLIBDIR",
	"NODE_OPTIONS;NODE_PATH",
	"JAVA_HOME;JAVA_TOOL_OPTIONS;_JAVA_OPTIONS;JDK_JAVA_OPTIONS;CLASSPATH",
	"PERL5OPT;PERL5LIB;PERLLIB;PERL5DB",
	"RUBYOPT;RUBYLIB;GEM_HOME;GEM_PATH",
	"GOROOT;GOPATH;GOBIN;GOFLAGS;GOTOOLCHAIN;GOENV;GOPROXY;GOSUMDB;GONOSUMDB;GOPRIVATE;GONOPROXY;GOINSECURE;GOCACHE;GOMODCACHE",
	"DOTNET_ROOT;DOTNET_STARTUP_HOOKS;DOTNET_ADDITIONAL_DEPS;CORECLR_*",
	// programs that other programs run
	"GIT_SSH;GIT_SSH_COMMAND;GIT_EXEC_PATH;GIT_CONFIG_*;GIT_ASKPASS;PAGER;EDITOR;VISUAL;BROWSER",
}, nil)

// keptLocal reports whether Environ keeps this machine's k (or none)
// instead of the target's: a variable of this machine or of its toolchain,
// unless env.override sets it or env.include names it exactly (a pattern
// such as "*" or "LD_*" does not).
func (s *Session) keptLocal(k string) bool {
	if !shellEnv.Selects(k) && !toolchainEnv.Selects(k) {
		return false
	}
	if _, override := s.cfg.Env.Override[k]; override {
		return false
	}
	return !slices.Contains(glob.Split(s.cfg.Env.Include), k)
}

// KeptLocal lists, sorted, the target's variables that would change which
// code this machine's programs run or where their toolchain is, and that
// Environ and RemoteEnv therefore leave out (the shell's PATH, HOME and the
// like are left out silently).
func (s *Session) KeptLocal() []string {
	var out []string
	for k := range s.remote {
		if toolchainEnv.Selects(k) && s.keptLocal(k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// KeptLocalNotice tells the user which of the target's variables KeptLocal
// left out and how to take one, or is empty when none was.
func (s *Session) KeptLocalNotice() string {
	kept := s.KeptLocal()
	if len(kept) == 0 {
		return ""
	}
	return fmt.Sprintf("kept this machine's %s, not the target's (they choose which code local programs run); "+
		"to take the target's, add the name to env.include, e.g. \"env\": {\"include\": [\"*\", %q]}",
		strings.Join(kept, ", "), kept[0])
}

// RemoteEnv returns the variables Environ adds to a local environment: the
// target's selected variables except those that describe this machine or
// its toolchain, with the configuration's overrides.
func (s *Session) RemoteEnv() map[string]string {
	out := make(map[string]string, len(s.remote))
	for k, v := range s.remote {
		if s.keptLocal(k) {
			continue
		}
		out[k] = v
	}
	return out
}

// Environ merges the target's variables into a local environment: the
// target's win, except those that describe this machine or its toolchain.
// Explicit overrides and exact includes always win.
func (s *Session) Environ(local []string) []string {
	merged := map[string]string{}
	var order []string
	for _, kv := range local {
		k, v, _ := strings.Cut(kv, "=")
		if _, seen := merged[k]; !seen {
			order = append(order, k)
		}
		merged[k] = v
	}
	names := make([]string, 0, len(s.remote))
	for k := range s.remote {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if s.keptLocal(k) {
			continue
		}
		if _, seen := merged[k]; !seen {
			order = append(order, k)
		}
		merged[k] = s.remote[k]
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+merged[k])
	}
	return out
}

// newSupervisor builds a supervisor for a program; program's directory
// stays local.
func (s *Session) newSupervisor(program string, transparentPID int) (*supervisor.Supervisor, error) {
	extra := []string{s.opts.WorkDir}
	if home, err := os.UserHomeDir(); err == nil {
		extra = append(extra, home)
	}
	if program != "" {
		extra = append(extra, filepath.Dir(program))
	}
	paths, err := rules.NewPaths(rules.PathOptions{
		RemoteByDefault: s.cfg.FS.Mode == config.FSRead,
		Local:           s.cfg.FS.Local, Remote: s.cfg.FS.Remote, ExtraLocal: extra,
		ResolverOnly: s.targetless,
	})
	if err != nil {
		return nil, err
	}
	in := s.cfg.Network.Incoming
	inOpts := supervisor.IncomingOptions{Filter: in.HTTPFilter, Ports: in.Ports, IgnorePorts: in.IgnorePorts, PortMapping: in.PortMapping,
		OnConflict: in.OnConflict}
	switch {
	case s.targetless: // nothing to take traffic from
	case in.Mode == config.IncomingMirror:
		inOpts.Mode = wire.ModeMirror
	case in.Mode == config.IncomingSteal:
		inOpts.Mode = wire.ModeSteal
	}
	var targetNet supervisor.TargetNetwork
	if s.targetNet != nil {
		targetNet = s.targetNet
	}
	sup, err := supervisor.New(supervisor.Config{
		Client: s.Client(), Paths: paths, Outgoing: s.out, Processes: rules.NewProcesses(s.cfg.Processes.Local),
		Incoming: inOpts, Hostname: s.host, DNS: *s.cfg.Network.DNS.Enabled, TransparentPID: transparentPID,
		DNSNames: rules.NewDNSNames(s.cfg.Network.DNS.Filter.Remote, s.cfg.Network.DNS.Filter.Local),
		Stderr:   s.opts.Stderr, OnEvent: s.opts.OnEvent, OnAbort: s.abort, Logger: s.opts.Logger,
		TargetNetwork: targetNet,
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.supervisors = append(s.supervisors, sup)
	s.mu.Unlock()
	return sup, nil
}

// Close ends the session: supervisors stop (the keeper answers for
// programs still running), subscriptions end, the agent connection closes.
func (s *Session) Close() error {
	s.cancel()
	s.mu.Lock()
	sups, keepers, listeners := s.supervisors, s.keepers, s.listeners
	s.supervisors, s.keepers, s.listeners = nil, nil, nil
	s.mu.Unlock()
	for _, l := range listeners {
		l.Close()
	}
	s.wg.Wait()
	for _, sup := range sups {
		sup.Close()
	}
	for _, release := range keepers {
		release()
	}
	if s.targetNet != nil {
		s.targetNet.Close()
		s.targetNS.Close()
	}
	s.mu.Lock()
	release := s.release
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		release()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	return nil
}
