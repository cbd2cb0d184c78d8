package server

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.lsp.dev/protocol"

	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/sessionhost"
)

// sessions runs the daemon's sessions. Each lives in a session host process;
// the daemon keeps what every client should know about it and tells them
// when that changes.
type sessions struct {
	s *Server

	mu   sync.Mutex
	byID map[string]*session
	seq  int
}

type session struct {
	host   *sessionhost.Host
	socket string
	// starter is the client that started the session: problems are also
	// shown to its user, if it is still connected.
	starter *client

	mu       sync.Mutex
	info     daemon.Session
	errors   []string
	stopping bool
}

func (se *session) snapshot() daemon.Session {
	se.mu.Lock()
	defer se.mu.Unlock()
	return se.info
}

func newSessions(s *Server) *sessions {
	return &sessions{s: s, byID: map[string]*session{}}
}

func (m *sessions) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byID)
}

func (m *sessions) list() []daemon.Session {
	m.mu.Lock()
	out := make([]daemon.Session, 0, len(m.byID))
	for _, se := range m.byID {
		out = append(out, se.snapshot())
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b daemon.Session) int { return a.StartedAt.Compare(b.StartedAt) })
	return out
}

func (m *sessions) get(id string) (*session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	se, ok := m.byID[id]
	if !ok {
		return nil, daemon.Errorf(daemon.CodeSessionNotFound, "no session %q; remocal/session/list shows the running ones", id)
	}
	return se, nil
}

// changed records a new state and tells every client.
func (m *sessions) changed(se *session, state daemon.SessionState, reason string) {
	se.mu.Lock()
	if se.info.State == daemon.StateEnded {
		se.mu.Unlock()
		return
	}
	se.info.State, se.info.Reason = state, reason
	if state == daemon.StateActive {
		se.info.Policy = nil
	}
	info := se.info
	se.mu.Unlock()
	m.s.broadcast(daemon.NotifySessionChanged, daemon.SessionChanged{Session: info})
}

func (m *sessions) start(ctx context.Context, c *client, p daemon.SessionStartParams) (daemon.SessionStartResult, error) {
	var res daemon.SessionStartResult
	folder, err := folderPath(p.WorkspaceFolder)
	if err != nil {
		return res, daemon.Errorf(daemon.CodeInvalidParams, "workspaceFolder: %v", err)
	}
	if p.Incoming != "" && !p.Incoming.Valid() {
		return res, daemon.Errorf(daemon.CodeInvalidParams, "incoming %q is not mirror, steal or off", p.Incoming)
	}
	file, cfg, problems, err := load(daemon.ConfigParams{WorkspaceFolder: folder, File: p.ConfigFile})
	if err != nil {
		return res, err
	}
	if cfg == nil {
		e := daemon.Errorf(daemon.CodeInvalidConfig, "%s has %d problem(s); fix them (remocal verify-config shows them) and start again", file, len(problems))
		e.Problems = problems
		return res, e
	}
	if cfg, err = config.Overlay(cfg, p.Overrides, "the session's overrides"); err != nil {
		return res, overridesError(err)
	}
	if file != "" || len(p.Overrides) > 0 {
		// The session's agent address and kubeconfig come only from the
		// file or the overrides, which a cloned repository's launch
		// configuration may hold: refuse what a repository cannot choose.
		checked := file
		if checked == "" {
			checked = filepath.Join(folder, config.Dir, config.File)
		}
		var ce *config.Error
		if err := cfg.CheckFile(checked); errors.As(err, &ce) {
			e := daemon.Errorf(daemon.CodeInvalidConfig, "%v", err)
			for _, pr := range ce.Problems {
				e.Problems = append(e.Problems, daemon.Problem{Path: pr.Path, Message: pr.Message})
			}
			return res, e
		}
	}
	target := p.Target
	if target == "" {
		target = cfg.Target
	}
	if target == "" {
		return res, daemon.Errorf(daemon.CodeInvalidParams, "no target: pass target, or set \"target\" in %s", filepath.Join(folder, ".remocal", "config.json"))
	}
	if p.Program != nil && p.Program.Path == "" {
		return res, daemon.Errorf(daemon.CodeInvalidParams, "program.path is empty")
	}
	if cfg.Kubernetes.Kubeconfig == "" {
		// Without this the session host would look for credentials in its
		// own environment ($KUBECONFIG, ~/.kube/config) and miss the
		// cluster the daemon lists targets of: a target from
		// remocal/targets would not be found, or be another cluster's.
		// A context only makes sense with its own kubeconfig.
		cfg.Kubernetes.Kubeconfig = m.s.opts.Kubernetes.Kubeconfig
		if cfg.Kubernetes.Context == "" {
			cfg.Kubernetes.Context = m.s.opts.Kubernetes.Context
		}
	}
	if p.Namespace != "" {
		// The session host reads the namespace from the configuration, as
		// remocal exec -n does.
		cfg.Kubernetes.Namespace = p.Namespace
		if err := cfg.Validate(); err != nil {
			return res, daemon.Errorf(daemon.CodeInvalidParams, "namespace: %v", err)
		}
	}
	namespace := ""
	if !strings.HasPrefix(target, "pid/") {
		namespace = cfg.Kubernetes.Namespace
	}

	m.mu.Lock()
	m.seq++
	id := fmt.Sprintf("s%d", m.seq)
	m.mu.Unlock()
	dir := filepath.Join(m.s.opts.RuntimeDir, "sessions")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	se := &session{socket: filepath.Join(dir, id+".sock"), starter: c, info: daemon.Session{
		ID: id, Target: target, Namespace: namespace, WorkspaceFolder: folder, Owner: c.displayName(), Label: p.Label,
		State: daemon.StateStarting, StartedAt: time.Now().UTC().Truncate(time.Millisecond),
	}}
	m.mu.Lock()
	m.byID[id] = se
	m.mu.Unlock()
	m.s.touch()
	m.s.broadcast(daemon.NotifySessionChanged, daemon.SessionChanged{Session: se.snapshot()})

	prog := c.progress(p.WorkDoneToken)
	prog.begin("remocal", "starting a session on "+target)
	prog.report("starting the agent and connecting to " + target)
	transparent := p.Program != nil && p.Program.TransparentFirst
	// What the host tells a terminal user ("remocal: starting the agent in
	// the cluster", which pod it chose) reaches the IDE as progress while
	// the session starts, and the daemon's log always.
	var starting atomic.Bool
	starting.Store(true)
	logLine := func(line string) {
		m.s.log.Debug("session host", "session", id, "line", line)
		if msg, ok := strings.CutPrefix(line, "remocal: "); ok && starting.Load() {
			prog.report(msg)
		}
	}
	host, err := sessionhost.Start(ctx, m.s.opts.Self, sessionhost.Spec{
		ID: id, Target: target, WorkDir: folder, ClientName: se.info.Owner, Socket: se.socket,
		Config: cfg, Incoming: p.Incoming, TransparentFirst: transparent, Version: m.s.opts.Version, Log: logLine,
	}, func(ev sessionhost.Event) { m.event(se, ev) })
	starting.Store(false)
	if err != nil {
		m.remove(id)
		m.changed(se, daemon.StateEnded, "failed to start: "+err.Error())
		prog.end("failed: " + err.Error())
		if ctx.Err() != nil {
			// The client cancelled the start ($/cancelRequest): it
			// answers -32800 (wireError), whatever the host said.
			return res, fmt.Errorf("session start cancelled: %w", context.Cause(ctx))
		}
		return res, startError(err)
	}
	ready := host.Ready()
	se.mu.Lock()
	se.host = host
	se.info = readyInfo(se.info, ready)
	se.mu.Unlock()
	m.s.wg.Go(func() { m.watch(se) })
	m.changed(se, daemon.StateActive, "")

	res = daemon.SessionStartResult{Session: se.snapshot(), Env: ready.Env, Warnings: append([]string{}, ready.Warnings...)}
	if p.Program != nil && needsWrapper(p.Program) {
		res.Wrapper = append([]string{m.s.opts.Self, "exec", "--join", se.socket}, wrapperFlags(p.Program)...)
		res.Wrapper = append(append(res.Wrapper, "--", p.Program.Path), p.Program.Args...)
	}
	prog.end("session " + id + " is active")
	c.logMessage(protocol.MessageTypeInfo, fmt.Sprintf("session %s on %s is active (incoming: %s)", id, ready.Resolved, ready.Incoming))
	if ready.Note != "" {
		// Which replica is in the session decides whose traffic the user
		// sees: worth a message, not just a log line.
		c.showMessage(protocol.MessageTypeInfo, fmt.Sprintf("remocal session %s: %s", id, ready.Note))
	}
	return res, nil
}

// readyInfo is info once its host is ready: what the session came to
// (the effective incoming mode, the resolved target, a note, the queues
// the operator split for it).
func readyInfo(info daemon.Session, r sessionhost.Ready) daemon.Session {
	info.Incoming = r.Incoming
	info.Resolved, info.Note = r.Resolved, r.Note
	info.QueueSplits = r.QueueSplits
	return info
}

// overridesError reports problems of remocal/session/start's overrides,
// which come from the client (a launch configuration), not from a file.
func overridesError(err error) error {
	var ce *config.Error
	if !errors.As(err, &ce) {
		return daemon.Errorf(daemon.CodeInvalidParams, "overrides: %v", err)
	}
	e := daemon.Errorf(daemon.CodeInvalidConfig, "the session's overrides (the launch configuration's remocal settings) have %d problem(s): %v; fix them and start again", len(ce.Problems), ce.Problems[0])
	for _, pr := range ce.Problems {
		e.Problems = append(e.Problems, daemon.Problem{Path: pr.Path, Message: pr.Message})
	}
	return e
}

func wrapperFlags(p *daemon.Program) []string {
	if p.TransparentFirst {
		return []string{"--transparent-first"}
	}
	return nil
}

// needsWrapper decides how the program joins: statically linked programs
// cannot load the bootstrap library, and debuggers that start the program
// themselves are wrapped so that their child joins.
func needsWrapper(p *daemon.Program) bool {
	switch p.Launch {
	case daemon.LaunchWrapper:
		return true
	case daemon.LaunchEnv:
		return false
	}
	return p.TransparentFirst || isStatic(p.Path)
}

// isStatic reports whether path is an ELF executable without a program
// interpreter (the dynamic loader), which LD_PRELOAD cannot reach.
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false // a script or something else: its interpreter loads the library
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// startError gives a failed start the code clients act on. The session
// host reports why the session could not start as a *daemon.Error whose
// code it took from the error's type; anything else means the host itself
// could not be run or died, which is the daemon's fault.
func startError(err error) error {
	var de *daemon.Error
	if errors.As(err, &de) {
		return de
	}
	return daemon.Errorf(daemon.CodeInternal, "%v", err)
}

// watch ends the session when its host exits, for whatever reason.
func (m *sessions) watch(se *session) {
	<-se.host.Done()
	reason := "stopped"
	se.mu.Lock()
	stopping := se.stopping
	se.mu.Unlock()
	if err := se.host.Err(); err != nil && !stopping {
		reason = "the session's process died: " + err.Error()
		m.s.log.Warn("session host died", "session", se.info.ID, "err", err)
	}
	m.remove(se.info.ID)
	m.changed(se, daemon.StateEnded, reason)
}

func (m *sessions) remove(id string) {
	m.mu.Lock()
	delete(m.byID, id)
	m.mu.Unlock()
	m.s.touch()
}

// event turns what a host reports into state changes and notifications.
func (m *sessions) event(se *session, ev sessionhost.Event) {
	se.mu.Lock()
	if ev.Kind != daemon.EventSubscribed {
		se.errors = append(se.errors, ev.Message)
		if len(se.errors) > 100 {
			se.errors = se.errors[1:]
		}
	}
	se.mu.Unlock()
	if ev.Kind != daemon.EventSubscribed {
		se.starter.showMessage(protocol.MessageTypeWarning, fmt.Sprintf("remocal session %s: %s", se.info.ID, ev.Message))
	}
	switch ev.Kind {
	case daemon.EventConflict:
		if ev.Conflict != nil {
			m.s.broadcast(daemon.NotifyConflict, *ev.Conflict)
		}
		m.changed(se, daemon.StateDegraded, ev.Message)
	case daemon.EventSubscribeFailed:
		se.mu.Lock()
		se.info.Policy = ev.Policy
		se.mu.Unlock()
		m.changed(se, daemon.StateDegraded, ev.Message)
	case daemon.EventAgentLost, daemon.EventAgentGone:
		m.changed(se, daemon.StateDegraded, ev.Message)
	case daemon.EventAgentReconnected:
		if ev.Resolved != "" {
			se.mu.Lock()
			se.info.Resolved = ev.Resolved
			se.mu.Unlock()
		}
		m.changed(se, daemon.StateActive, "")
	case daemon.EventTargetMoved:
		// Clients offer the restart that gives programs the new pod's
		// environment and hostname (Session.Stale).
		se.mu.Lock()
		se.info.Stale = ev.Stale
		if ev.Resolved != "" {
			se.info.Resolved = ev.Resolved
		}
		state, reason := se.info.State, se.info.Reason
		se.mu.Unlock()
		m.changed(se, state, reason)
	}
}

func (m *sessions) stop(ctx context.Context, id string) error {
	se, err := m.get(id)
	if err != nil {
		return err
	}
	se.mu.Lock()
	host := se.host
	se.stopping = true
	se.mu.Unlock()
	if host == nil {
		return daemon.Errorf(daemon.CodeBusy, "session %s is still starting; stop it once it is active", id)
	}
	if err := host.Stop(ctx); err != nil {
		return daemon.Errorf(daemon.CodeInternal, "stop session %s: %v", id, err)
	}
	<-host.Done()
	return nil
}

func (m *sessions) detail(ctx context.Context, id string) (daemon.SessionDetail, error) {
	se, err := m.get(id)
	if err != nil {
		return daemon.SessionDetail{}, err
	}
	se.mu.Lock()
	host := se.host
	errs := append([]string{}, se.errors...)
	se.mu.Unlock()
	d := daemon.SessionDetail{Session: se.snapshot(), Subscriptions: []daemon.Subscription{}, Processes: []daemon.Process{},
		Counters: map[string]uint64{}, Errors: errs}
	if host == nil {
		return d, nil
	}
	hd, err := host.Detail(ctx)
	if err != nil {
		return d, daemon.Errorf(daemon.CodeInternal, "ask session %s for its details: %v", id, err)
	}
	d.Subscriptions, d.Processes, d.Counters = hd.Subscriptions, hd.Processes, hd.Counters
	if d.Subscriptions == nil {
		d.Subscriptions = []daemon.Subscription{}
	}
	if d.Processes == nil {
		d.Processes = []daemon.Process{}
	}
	if d.Counters == nil {
		d.Counters = map[string]uint64{}
	}
	return d, nil
}

// stopAll ends every session, for daemon shutdown.
func (m *sessions) stopAll() {
	m.mu.Lock()
	all := make([]*session, 0, len(m.byID))
	for _, se := range m.byID {
		all = append(all, se)
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, se := range all {
		se.mu.Lock()
		host := se.host
		se.stopping = true
		se.mu.Unlock()
		if host != nil {
			host.Stop(ctx)
		}
	}
}
