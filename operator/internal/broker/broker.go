// Package broker is the operator's session broker: it terminates a
// client's wire protocol (protocol/wire, as an agent would speak it) and
// speaks it to the agents of every pod of the client's target. Control
// requests (env, files, ping) and outgoing dials go to one primary pod;
// incoming subscriptions go to every ready pod, each agent's deliveries
// spliced to the client under the client's own subscription id. Steals
// take locks across sessions (package locks) so conflicts are decided, and
// explained, in the cluster; traffic is counted per session.
//
// Sessions are leases: a client whose connection ends leaves its session
// Disconnected: its agent subscriptions are removed at once (the traffic
// returns to the application) and its locks are reserved until the
// session TTL ends; a client of the same user that names the session in
// its hello within the TTL resumes it.
//
// Broker implements backend.Broker, backend.Sessions and backend.Status.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/operator/internal/locks"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/policy"
	"github.com/remocal/remocal/protocol/wire"
)

// Config configures a broker.
type Config struct {
	Agents Agents
	// Authorizer decides onConflict: override (VerbOverride on targets).
	Authorizer backend.Authorizer
	// Version is the operator's version, shown to clients and in status.
	Version string
	// Self names this operator replica; Leader, if set, says which
	// replica leads now.
	Self   string
	Leader func() string
	// SessionTTL is how long a disconnected session keeps its locks for
	// its client to come back; default DefaultSessionTTL.
	SessionTTL time.Duration
	// AgentIdleTTL is how long an agent connection no session uses is
	// kept before it is closed (and Agents.Idle called); default
	// DefaultAgentIdleTTL.
	AgentIdleTTL time.Duration
	Logger       *slog.Logger
	// Policies, if set, restrict sessions (protocol/policy); TargetInfo
	// gives the labels and default container policies select targets by;
	// Resolver resolves the host names of outgoing rules (default: the
	// operator's own DNS).
	Policies   Policies
	TargetInfo TargetInfo
	Resolver   policy.Resolver
	// Auditor, if set, receives an audit record of every connect,
	// subscription, override, kill, policy denial and session end.
	Auditor Auditor
	// Splits, if set, answers queue.split (issue 16) and learns of
	// sessions that end.
	Splits Splitter
}

// Splitter splits queues for sessions (operator/internal/splits).
type Splitter interface {
	// Split gives the session a share of a queue; the error is a
	// *wire.Error for the client.
	Split(ctx context.Context, namespace, session string, who operator.UserInfo, req *wire.QueueSplit) (*wire.QueueSplitResult, error)
	// SessionEnded ends the session's splits. Not called for sessions
	// ended by the broker's Close: the next leader keeps their splits.
	SessionEnded(namespace, session string)
	// SessionSplits are the session's splits, for its Session object;
	// Status the queues split now, for the operator's status.
	SessionSplits(namespace, session string) []operator.QueueSplitStatus
	Status() []operator.QueueState
}

const (
	DefaultSessionTTL   = time.Minute
	DefaultAgentIdleTTL = time.Minute
)

// Broker serves sessions. Create it with New and end it with Close.
type Broker struct {
	cfg   Config
	log   *slog.Logger
	locks *locks.Table
	pool  *pool
	reg   *registry
	feeds *feeds

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // session goroutines, watches

	mu     sync.Mutex
	closed bool

	// traffic counts what the broker routed, by mode.
	traffic [numModes]struct{ requests, bytes atomic.Uint64 }
}

// Modes of routed traffic, for Traffic.
const (
	modeMirror = iota
	modeSteal
	modeOutgoing
	numModes
)

// Traffic is what the broker routed since it started, by mode ("mirror",
// "steal": incoming connections and requests; "outgoing": connections the
// sessions opened): requests (connections or HTTP requests) and bytes,
// both directions, counted when each ends.
func (b *Broker) Traffic() map[string][2]uint64 {
	out := map[string][2]uint64{}
	for i, name := range []string{"mirror", "steal", "outgoing"} {
		out[name] = [2]uint64{b.traffic[i].requests.Load(), b.traffic[i].bytes.Load()}
	}
	return out
}

var (
	_ backend.Broker   = (*Broker)(nil)
	_ backend.Sessions = (*Broker)(nil)
	_ backend.Status   = (*Broker)(nil)
)

// New returns a broker.
func New(cfg Config) (*Broker, error) {
	if cfg.Agents == nil || cfg.Authorizer == nil {
		return nil, errors.New("broker: Agents and Authorizer are required")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.AgentIdleTTL <= 0 {
		cfg.AgentIdleTTL = DefaultAgentIdleTTL
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		cfg: cfg, log: log, locks: locks.New(nil), reg: newRegistry(),
		pool: &pool{agents: cfg.Agents, idleTTL: cfg.AgentIdleTTL, ctx: ctx, entries: map[string]*poolEntry{}},
		ctx:  ctx, cancel: cancel,
	}
	b.pool.lost = b.agentLost
	b.feeds = &feeds{b: b, m: map[string]*podFeed{}}
	return b, nil
}

// agentLost makes the sessions on pod subscribe again through a new
// connection to its agent (the agent restarted, the pod network
// hiccupped): their subscriptions there died with the old one.
func (b *Broker) agentLost(pod Pod) {
	b.log.Warn("connection to an agent lost; subscribing again", "pod", pod.key())
	for _, s := range b.reg.all() {
		if slices.Contains(s.podKeys(), pod.key()) {
			b.goTracked(func() { s.recover(pod) })
		}
	}
}

// Close ends every session (telling connected clients), closes the agent
// connections and waits for the broker's goroutines.
func (b *Broker) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.mu.Unlock()
	var ending sync.WaitGroup
	for _, s := range b.reg.all() {
		ending.Add(1)
		go func() {
			defer ending.Done()
			s.end("the operator is stopping; reconnect to start a new session")
		}()
	}
	ending.Wait()
	b.cancel()
	b.wg.Wait()
	b.pool.close()
}

// isClosed reports whether Close began.
func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// goTracked runs f on a goroutine Close waits for; false when the broker
// is closed already.
func (b *Broker) goTracked(f func()) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
	return true
}

// List implements backend.Sessions.
func (b *Broker) List(namespace string) ([]operator.Session, string) {
	return b.reg.list(namespace)
}

// Get implements backend.Sessions.
func (b *Broker) Get(namespace, name string) (operator.Session, bool) {
	s := b.reg.get(namespace, name)
	if s == nil {
		return operator.Session{}, false
	}
	return s.object(), true
}

// Watch implements backend.Sessions.
func (b *Broker) Watch(ctx context.Context, namespace, resourceVersion string) (<-chan backend.SessionEvent, error) {
	w, err := b.reg.watch(namespace, resourceVersion)
	if err != nil {
		return nil, err
	}
	out := make(chan backend.SessionEvent)
	if !b.goTracked(func() {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(b.ctx, cancel)
		defer stop()
		b.reg.run(ctx, w, out)
	}) {
		b.reg.unwatch(w)
		close(out)
	}
	return out, nil
}

// Delete implements backend.Sessions.
func (b *Broker) Delete(ctx context.Context, namespace, name, reason string) error {
	s := b.reg.get(namespace, name)
	if s == nil {
		return fmt.Errorf("session %s/%s: %w", namespace, name, backend.ErrNotFound)
	}
	if reason == "" {
		reason = "the session was deleted"
	}
	// The record's user is who ended it (the API server put them in
	// ctx), the session's owner in what.
	r := Record{Action: ActionKill, Decision: DecisionAllow, What: "delete session of " + s.user.Username, Reason: reason}
	if u, ok := genericapirequest.UserFrom(ctx); ok {
		r.User = operator.UserInfo{Username: u.GetName(), UID: u.GetUID(), Groups: u.GetGroups()}
	}
	s.record(r)
	// Before the end: its client, cut off, may resume at once.
	b.reg.rememberKilled(namespace, name, reason)
	s.end(reason)
	return nil
}

// Status implements backend.Status.
func (b *Broker) Status(ctx context.Context) operator.OperatorState {
	st := operator.OperatorState{Version: b.cfg.Version, Self: b.cfg.Self, Healthy: true}
	if b.cfg.Leader != nil {
		st.Leader = b.cfg.Leader()
	}
	sessions := b.reg.all()
	st.Sessions = len(sessions)
	perPod := map[string]int{}
	for _, s := range sessions {
		for _, p := range s.podKeys() {
			perPod[p]++
		}
	}
	for _, e := range b.pool.snapshot() {
		as := operator.AgentStatus{Pod: e.pod.key(), Sessions: perPod[e.pod.key()]}
		if n, ok := b.cfg.Agents.(interface{ AgentName(Pod) string }); ok {
			as.Agent = n.AgentName(e.pod)
		}
		if e.refs == 0 && !e.idleSince.IsZero() {
			t := metav1.NewTime(e.idleSince)
			as.IdleSince = &t
		}
		st.Agents = append(st.Agents, as)
		if e.err != nil {
			st.Problems = append(st.Problems, e.err.Error())
		}
	}
	if b.cfg.Splits != nil {
		st.QueueSplits = b.cfg.Splits.Status()
		for _, q := range st.QueueSplits {
			if q.Message != "" {
				st.Problems = append(st.Problems, fmt.Sprintf("queue %s of %s/%s: %s", q.Queue, q.Namespace, q.Consumer, q.Message))
			}
		}
	}
	st.Healthy = len(st.Problems) == 0
	return st
}
