// Package server is the remocal daemon: a long-running JSON-RPC server with
// LSP framing and lifecycle that IDE extensions and scripts share. It lists
// targets from providers' caches, resolves and watches configuration, and
// runs sessions, each in a process of its own (package sessionhost) so that
// one session's crash never takes down the daemon or the other sessions.
//
// The layering follows gopls: this file owns the daemon's lifetime; client.go
// one connection's lifecycle; methods.go the remocal/* handlers; notify.go
// what every client is told.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sourcegraph/conc"

	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/internal/opsessions"
	"github.com/remocal/remocal/server/internal/targets"
)

// Options configure a daemon.
type Options struct {
	Version string
	// Socket is where it listens, for DaemonInfo.
	Socket string
	// RuntimeDir holds session sockets.
	RuntimeDir string
	// Self is the remocal binary: session hosts are started from it and
	// wrappers name it.
	Self string
	// IdleTimeout ends Serve after this long with no client and no
	// session; 0 never.
	IdleTimeout time.Duration
	Targets     *targets.Set
	// Remote watches the cluster operator's sessions (NewRemoteSessions);
	// nil when there is no cluster. The daemon owns and closes it.
	Remote *opsessions.Watcher
	// Kubernetes is the cluster the daemon was told to use (`remocal
	// daemon --kubeconfig F --context C`): sessions whose configuration
	// names no kubeconfig use it too.
	Kubernetes config.Kubernetes
	MaxMessage int
	Logger     *slog.Logger
}

// ErrIdle ends Serve after the idle timeout.
var ErrIdle = errors.New("daemon idle: no clients and no sessions")

// errShutdown ends Serve after remocal/daemon/shutdown.
var errShutdown = errors.New("daemon shut down on request")

// Server is the daemon.
type Server struct {
	opts    Options
	log     *slog.Logger
	started time.Time

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     conc.WaitGroup

	mu      sync.Mutex
	clients map[*client]struct{}
	// activity is signalled whenever the client or session count changes,
	// to re-arm the idle timer.
	activity chan struct{}

	sessions *sessions
	configs  *configs
}

// New prepares a daemon.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Targets == nil {
		opts.Targets = targets.NewSet()
	}
	if opts.RuntimeDir == "" {
		opts.RuntimeDir = filepath.Dir(opts.Socket)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &Server{
		opts: opts, log: opts.Logger, started: time.Now(), ctx: ctx, cancel: cancel,
		clients: map[*client]struct{}{}, activity: make(chan struct{}, 1),
	}
	s.sessions = newSessions(s)
	var err error
	if s.configs, err = newConfigs(s); err != nil {
		return nil, err
	}
	s.wg.Go(s.forwardTargetChanges)
	if opts.Remote != nil {
		s.wg.Go(s.forwardRemoteSessions)
	}
	return s, nil
}

// Serve accepts clients on l until ctx ends, the idle timeout passes or a
// client asks the daemon to shut down. It then stops every session and
// waits for everything it started.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { s.cancel(context.Canceled) })
	defer stop()
	s.wg.Go(func() {
		<-s.ctx.Done()
		l.Close()
	})
	if s.opts.IdleTimeout > 0 {
		s.wg.Go(s.watchIdle)
	}
	var err error
	for {
		var conn net.Conn
		conn, err = l.Accept()
		if err != nil {
			break
		}
		s.wg.Go(func() { s.ServeConn(conn) })
	}
	cause := context.Cause(s.ctx)
	s.cancel(nil)
	s.shutdown()
	switch {
	case cause == nil:
		return fmt.Errorf("accept: %w", err)
	case errors.Is(cause, context.Canceled) || errors.Is(cause, errShutdown):
		return nil
	}
	return cause
}

func (s *Server) shutdown() {
	s.mu.Lock()
	clients := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	for _, c := range clients {
		c.close()
	}
	s.sessions.stopAll()
	s.configs.close()
	s.opts.Targets.Close()
	if s.opts.Remote != nil {
		s.opts.Remote.Close()
	}
	s.wg.Wait()
}

// watchIdle ends the daemon once nobody has used it for IdleTimeout.
func (s *Server) watchIdle() {
	t := time.NewTimer(s.opts.IdleTimeout)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.activity:
			t.Reset(s.opts.IdleTimeout)
		case <-t.C:
			if s.clientCount() == 0 && s.sessions.count() == 0 {
				s.log.Info("idle; daemon exiting", "idleTimeout", s.opts.IdleTimeout)
				s.cancel(ErrIdle)
				return
			}
			t.Reset(s.opts.IdleTimeout)
		}
	}
}

func (s *Server) touch() {
	select {
	case s.activity <- struct{}{}:
	default:
	}
}

func (s *Server) clientCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}

func (s *Server) info() daemon.DaemonInfo {
	return daemon.DaemonInfo{
		Version: s.opts.Version, ProtocolVersion: daemon.ProtocolVersion, PID: os.Getpid(), Socket: s.opts.Socket,
		Sessions: s.sessions.count(), Clients: s.clientCount(), StartedAt: s.started.UTC().Truncate(time.Second),
	}
}

// requestShutdown ends the daemon; it refuses while sessions run unless
// forced, so one client cannot end the others' sessions by accident. The
// daemon stops once the reply is written: stopping closes every
// connection, and a closing connection writes nothing more.
func (s *Server) requestShutdown(ctx context.Context, c *client, force bool) error {
	if n := s.sessions.count(); n > 0 && !force {
		return daemon.Errorf(daemon.CodeBusy, "the daemon runs %d session(s); stop them first or pass force", n)
	}
	s.log.Info("shutdown requested")
	c.afterReply(ctx, func() { s.cancel(errShutdown) })
	return nil
}

func (s *Server) forwardTargetChanges() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case c, ok := <-s.opts.Targets.Changed():
			if !ok {
				return
			}
			s.broadcast(daemon.NotifyTargetsChanged, c)
		}
	}
}

// forwardRemoteSessions tells every client what changes in the operator's
// sessions: anybody's sessions and locks on the targets in view.
func (s *Server) forwardRemoteSessions() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case n := <-s.opts.Remote.Notifications():
			s.broadcast(n.Method, n.Params)
		}
	}
}

// remoteSessions lists the operator's sessions in view, if watched.
func (s *Server) remoteSessions() []daemon.RemoteSession {
	if s.opts.Remote == nil {
		return nil
	}
	return s.opts.Remote.List()
}
