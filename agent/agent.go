// Package agent serves remocal clients from beside a target process: it
// answers env and file requests from the target's /proc entries, dials out
// from the target's network namespace, and hands the target's incoming
// traffic to subscribed clients (package incoming).
//
// One agent serves many clients at once. It exits when its target exits, and
// after an idle period without clients.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/conc"

	"github.com/remocal/remocal/agent/internal/incoming"
	"github.com/remocal/remocal/agent/target"
	"github.com/remocal/remocal/protocol/wire"
)

// Config configures an agent.
type Config struct {
	// Target is the process served. The agent does not close it.
	Target *target.Process
	// Version is reported to clients.
	Version string
	// IdleTTL ends Serve after this long without clients; 0 disables it.
	IdleTTL time.Duration
	Logger  *slog.Logger
	// Targetless serves the agent's own network only: outgoing connections
	// and DNS files, no environment and no incoming traffic (there is no
	// application to take traffic from).
	Targetless bool
	// NodeAddrs are the node's addresses (a pod's status.hostIPs). With the
	// target's gateways they say where kubelet probes come from, which
	// are never stolen (incoming/probes.go).
	NodeAddrs []netip.Addr
	// Key is the secret whoever created the agent gave it (at least
	// wire.MinKeySize bytes): every client must prove it holds the key in
	// the handshake, and the agent proves it in turn (wire/auth.go). Nil
	// serves any client that reaches the listener, which only a 0600 unix
	// socket may do (its permissions are the credential).
	Key []byte
}

// ErrTargetExited ends Serve when the target process exits.
var ErrTargetExited = errors.New("target process exited")

// ErrIdle ends Serve after IdleTTL without clients.
var ErrIdle = errors.New("no clients for the idle TTL")

// Agent serves clients for one target.
type Agent struct {
	cfg      Config
	proc     *target.Process
	log      *slog.Logger
	incoming *incoming.Manager
	hostname string

	mu       sync.Mutex
	sessions map[*session]struct{}
	idle     chan struct{} // signalled when the last client leaves
	nextID   atomic.Uint64

	stats struct {
		clients  atomic.Uint64
		refused  atomic.Uint64
		requests atomic.Uint64
		outgoing atomic.Uint64
	}
}

// Stats counts what an agent did since it started.
type Stats struct {
	// Clients completed the handshake (and proved the key, if any).
	Clients uint64
	// Refused were turned away in the handshake: a wrong or missing proof
	// of the key, a bad hello.
	Refused uint64
	// Requests are control requests answered; Dials outgoing connections
	// made.
	Requests, Dials uint64
}

// Stats returns the agent's counters.
func (a *Agent) Stats() Stats {
	return Stats{
		Clients: a.stats.clients.Load(), Refused: a.stats.refused.Load(),
		Requests: a.stats.requests.Load(), Dials: a.stats.outgoing.Load(),
	}
}

// New prepares an agent. It fails early if the target cannot be served.
func New(cfg Config) (*Agent, error) {
	if cfg.Target == nil {
		return nil, errors.New("agent: no target")
	}
	if cfg.Key != nil && len(cfg.Key) < wire.MinKeySize {
		return nil, fmt.Errorf("agent: the key has %d bytes; it needs at least %d", len(cfg.Key), wire.MinKeySize)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("target", cfg.Target.Name())
	host, err := cfg.Target.Hostname()
	if err != nil {
		log.Warn("cannot read the target's hostname; clients will keep their own", "err", err)
	}
	gws, err := cfg.Target.Gateways()
	if err != nil {
		log.Warn("cannot read the target's routes; kubelet probes are recognised by the node's addresses only", "err", err)
	}
	return &Agent{
		cfg: cfg, proc: cfg.Target, log: log, hostname: host,
		incoming: incoming.New(cfg.Target.NetNS(), log, append(slices.Clone(cfg.NodeAddrs), gws...)),
		sessions: map[*session]struct{}{},
		idle:     make(chan struct{}, 1),
	}, nil
}

// Serve accepts clients on l until ctx ends, the target exits or the idle TTL
// passes, then closes every session, removes the redirect rules and returns
// why it stopped.
func (a *Agent) Serve(ctx context.Context, l net.Listener) error {
	ctx, cancel := context.WithCancelCause(ctx)
	var wg conc.WaitGroup
	defer func() {
		cancel(nil)
		l.Close()
		a.shutdown()
		wg.Wait()
	}()

	wg.Go(func() {
		select {
		case <-a.proc.Done():
			a.log.Info("target exited; agent stopping")
			cancel(ErrTargetExited)
		case <-ctx.Done():
		}
	})
	if a.cfg.IdleTTL > 0 {
		wg.Go(func() { a.watchIdle(ctx, cancel) })
	}
	wg.Go(func() {
		<-ctx.Done()
		l.Close()
	})
	for {
		conn, err := l.Accept()
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				if errors.Is(cause, context.Canceled) {
					return nil
				}
				return cause
			}
			return fmt.Errorf("accept clients: %w", err)
		}
		wg.Go(func() { a.ServeConn(ctx, conn) })
	}
}

// watchIdle cancels ctx once no client has been connected for IdleTTL.
func (a *Agent) watchIdle(ctx context.Context, cancel context.CancelCauseFunc) {
	timer := time.NewTimer(a.cfg.IdleTTL)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.idle:
			timer.Reset(a.cfg.IdleTTL)
		case <-timer.C:
			if a.clientCount() == 0 {
				a.log.Info("no clients; agent stopping", "idleTTL", a.cfg.IdleTTL)
				cancel(ErrIdle)
				return
			}
			timer.Reset(a.cfg.IdleTTL)
		}
	}
}

func (a *Agent) clientCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.sessions)
}

// ServeConn serves one client over any byte stream (a TCP or unix
// connection, a kube port-forward) until it disconnects or ctx ends.
func (a *Agent) ServeConn(ctx context.Context, conn io.ReadWriteCloser) {
	s := a.newSession(conn)
	if !a.register(s) {
		conn.Close()
		return
	}
	defer a.unregister(s)
	s.serve(ctx)
}

func (a *Agent) register(s *session) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sessions == nil {
		return false
	}
	a.sessions[s] = struct{}{}
	return true
}

func (a *Agent) unregister(s *session) {
	a.incoming.RemoveClient(s)
	a.mu.Lock()
	delete(a.sessions, s)
	empty := len(a.sessions) == 0
	a.mu.Unlock()
	if empty {
		select {
		case a.idle <- struct{}{}:
		default:
		}
	}
}

// supersede closes the other connections of s's remocal session and drops
// their subscriptions. A session reconnects after its connection dropped
// somewhere on the way (a port-forward through the apiserver and kubelet):
// the agent may not notice that for a while, and meanwhile the old
// connection would hold the ports the session is about to ask for again.
func (a *Agent) supersede(s *session) {
	if s.resumes == "" {
		return
	}
	a.mu.Lock()
	var old []*session
	for other := range a.sessions {
		if other != s && other.resumes == s.resumes {
			old = append(old, other)
		}
	}
	a.mu.Unlock()
	for _, o := range old {
		s.log.Info("client reconnected; closing its previous connection", "previous", o.id)
		a.incoming.RemoveClient(o)
		o.close()
	}
}

// shutdown closes every session and removes redirects.
func (a *Agent) shutdown() {
	a.mu.Lock()
	sessions := a.sessions
	a.sessions = nil
	a.mu.Unlock()
	for s := range sessions {
		s.close()
	}
	if err := a.incoming.Close(); err != nil {
		a.log.Error("remove redirect table", "err", err)
	}
}

func (a *Agent) welcome(clientID string) *wire.Welcome {
	caps := slices.Clone(wire.AllCapabilities)
	if a.cfg.Key != nil {
		caps = append(caps, wire.CapAuth)
	}
	if a.cfg.Targetless {
		// No application: nothing to read the environment of or to take
		// traffic from. Clients see that before they ask.
		caps = slices.DeleteFunc(caps, func(c wire.Capability) bool {
			switch c {
			case wire.CapEnv, wire.CapMirror, wire.CapSteal, wire.CapHTTP1Filter, wire.CapHTTP2, wire.CapHTTP1Conn:
				return true
			}
			return false
		})
	}
	return &wire.Welcome{
		Protocol:     wire.Current,
		Agent:        wire.AgentInfo{Version: a.cfg.Version, PID: os.Getpid()},
		Capabilities: caps,
		Target:       wire.TargetInfo{Name: a.proc.Name(), PID: a.proc.PID(), Hostname: a.hostname},
		ClientID:     clientID,
	}
}
