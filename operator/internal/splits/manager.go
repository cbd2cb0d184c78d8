// Package splits is the operator's queue splitting (issue 16,
// docs/queues.md): it turns a session's queue.split request into a router
// on the consumer's queue, the workload repointed at a queue of its own,
// and a temporary queue for the session, and undoes all of it when the
// last session of the queue ends. What it does is recorded in the
// RemocalQueueConsumer's status before it takes effect, and the brokers
// keep their own state, so a new leader resumes where the last one
// stopped (Run's reconcile), never from memory alone.
package splits

import (
	"context"
	"log/slog"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/protocol/operator"
	qs "github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/protocol/wire"
)

// Config is what a Manager needs.
type Config struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// Authorizer decides who may split a consumer's queues: create on
	// queuesplits (operator.remocal.dev) named by the consumer.
	Authorizer backend.Authorizer
	// Alive reports whether the session broker knows the session
	// (connected, or disconnected within its TTL). Set before Run.
	Alive func(namespace, session string) bool
	// Leading reports whether this replica leads: only the leader routes
	// and reconciles (nil: always).
	Leading func() bool
	// Grace is how long a recorded session the broker does not know is
	// kept: a new leader gives clients this long to come back (the
	// session TTL).
	Grace time.Duration
	// Resync is the reconcile period (10 s); SettleTimeout bounds
	// settling a router's unacknowledged messages (2 min, above
	// JetStream's default AckWait of 30 s); RolloutTimeout bounds each
	// rollout of the workload (5 min).
	Resync         time.Duration
	SettleTimeout  time.Duration
	RolloutTimeout time.Duration
	Logger         *slog.Logger
}

// Manager runs the operator's queue splits.
type Manager struct {
	cfg Config
	rqc consumers
	log *slog.Logger

	// ctx bounds the routers and background waits; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	splits map[string]*split // by namespace/consumer/queue
}

// New returns a manager; Run reconciles, Close stops it.
func New(cfg Config) *Manager {
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Second
	}
	if cfg.SettleTimeout <= 0 {
		cfg.SettleTimeout = 2 * time.Minute
	}
	if cfg.RolloutTimeout <= 0 {
		cfg.RolloutTimeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Leading == nil {
		cfg.Leading = func() bool { return true }
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, rqc: consumers{cfg.Dynamic}, log: cfg.Logger, ctx: ctx, cancel: cancel,
		splits: map[string]*split{}}
}

// SetAlive sets Config.Alive, for a session broker made after the
// manager (it answers the manager's Split).
func (m *Manager) SetAlive(alive func(namespace, session string) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg.Alive = alive
}

// alive reports whether the session broker knows the session.
func (m *Manager) alive(ns, session string) bool {
	m.mu.Lock()
	f := m.cfg.Alive
	m.mu.Unlock()
	return f != nil && f(ns, session)
}

// goTracked runs f on a goroutine Close waits for; false once closed.
func (m *Manager) goTracked(f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
	return true
}

// Close stops the routers as a crash would, without restoring anything:
// the splits are recorded, and the next leader resumes them.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	for _, s := range m.all() {
		s.op.Lock()
		s.close()
		s.op.Unlock()
	}
}

// entry returns the split of a queue, making an idle one.
func (m *Manager) entry(ns, consumer, queue string) *split {
	key := ns + "/" + consumer + "/" + queue
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.splits[key]
	if s == nil {
		s = &split{m: m, ns: ns, consumer: consumer, queue: queue, key: key}
		m.splits[key] = s
	}
	return s
}

// forget drops an idle split from the map.
func (m *Manager) forget(s *split) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.splits[s.key] == s {
		delete(m.splits, s.key)
	}
}

// Split gives session a share of a queue and returns the env its local
// program reads it with. Errors are *wire.Error, said to the user.
func (m *Manager) Split(ctx context.Context, ns, session string, who operator.UserInfo, req *wire.QueueSplit) (*wire.QueueSplitResult, error) {
	ok, err := m.cfg.Authorizer.Allowed(ctx, who, "create", ns, "queuesplits", "", req.Consumer)
	if err != nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "could not check whether %s may split queues: %v", who.Username, err)
	}
	if !ok {
		return nil, wire.Errorf(wire.CodePermissionDenied,
			"%s may not split the queues of RemocalQueueConsumer %s/%s: ask for create on queuesplits.operator.remocal.dev (the remocal-user role grants it)",
			who.Username, ns, req.Consumer)
	}
	sp := fromWire(req)
	if err := sp.Validate(); err != nil {
		return nil, wire.Errorf(wire.CodeInvalid, "queueSplits: %v", err)
	}
	rqc, err := m.rqc.get(ctx, ns, sp.Consumer)
	if err != nil {
		return nil, consumerError(ns, sp.Consumer, err)
	}
	q, err := pickQueue(rqc, sp.Queue)
	if err != nil {
		return nil, err
	}
	if !m.cfg.Leading() {
		return nil, wire.Errorf(wire.CodeUnavailable, "this operator replica does not lead; reconnect")
	}
	s := m.entry(ns, sp.Consumer, q.Name)
	s.op.Lock()
	defer s.op.Unlock()
	env, err := s.add(ctx, rqc, q, qs.SessionSplit{Session: session, User: who.Username, Mode: sp.EffectiveMode(), Filter: sp.Filter})
	if err != nil {
		return nil, err
	}
	return &wire.QueueSplitResult{ID: sp.Consumer + "/" + q.Name, Queue: q.Name, Env: env}, nil
}

// SessionEnded ends the session's splits: its queues move to the deployed
// consumer, and a queue no session splits any more is given back. Not for
// a session that ends because this operator stops: the next leader keeps
// it (Close).
func (m *Manager) SessionEnded(ns, session string) {
	m.goTracked(func() {
		m.mu.Lock()
		var mine []*split
		for _, s := range m.splits {
			if s.ns == ns {
				mine = append(mine, s)
			}
		}
		m.mu.Unlock()
		for _, s := range mine {
			s.op.Lock()
			if s.has(session) {
				s.remove(m.ctx, session, "the session ended")
			}
			s.op.Unlock()
		}
	})
}

func fromWire(req *wire.QueueSplit) qs.Split {
	sp := qs.Split{Consumer: req.Consumer, Queue: req.Queue, Mode: qs.Mode(req.Mode)}
	if req.Filter != nil {
		sp.Filter = &qs.Filter{Headers: req.Filter.Headers, Body: req.Filter.Body}
	}
	return sp
}

func pickQueue(rqc *qs.RemocalQueueConsumer, name string) (qs.Queue, error) {
	if err := rqc.Spec.Validate(); err != nil {
		return qs.Queue{}, wire.Errorf(wire.CodeInvalid, "RemocalQueueConsumer %s/%s is invalid, ask whoever declared it to fix it: %v", rqc.Namespace, rqc.Name, err)
	}
	var names []string
	for _, q := range rqc.Spec.Queues {
		if q.Name == name || name == "" && len(rqc.Spec.Queues) == 1 {
			return q, nil
		}
		names = append(names, q.Name)
	}
	if name == "" {
		return qs.Queue{}, wire.Errorf(wire.CodeInvalid, "RemocalQueueConsumer %s/%s has queues %v: name one in queueSplits[].queue", rqc.Namespace, rqc.Name, names)
	}
	return qs.Queue{}, wire.Errorf(wire.CodeNotFound, "RemocalQueueConsumer %s/%s has no queue %q; its queues are %v", rqc.Namespace, rqc.Name, name, names)
}

func consumerError(ns, name string, err error) error {
	if apierrors.IsNotFound(err) {
		return wire.Errorf(wire.CodeNotFound, "RemocalQueueConsumer %s/%s does not exist: check queueSplits[].consumer (kubectl get remocalqueueconsumers -n %s), or ask the platform team to declare it (docs/queues.md)", ns, name, ns)
	}
	return wire.Errorf(wire.CodeUnavailable, "reading RemocalQueueConsumer %s/%s: %v", ns, name, err)
}

// unavailable is a wire error of what the operator could not do.
func unavailable(format string, args ...any) error {
	return wire.Errorf(wire.CodeUnavailable, format, args...)
}
