package broker

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/policy"
	"github.com/remocal/remocal/protocol/wire"
)

// session is one client's session on a target; it outlives the client's
// connection by the session TTL.
type session struct {
	b      *Broker
	name   string
	ns     string
	target string
	user   operator.UserInfo
	uid    types.UID
	start  time.Time
	log    *slog.Logger
	rv     atomic.Uint64 // resourceVersion of its last published change
	pubMu  sync.Mutex    // one registry publish at a time (registry.go)

	// ctx ends with the session; it bounds the pod follower.
	ctx    context.Context
	cancel context.CancelFunc

	// subMu serialises changes of the subscription set across the agents
	// (subscribe, unsubscribe, pods coming and going, disconnecting).
	subMu sync.Mutex

	mu            sync.Mutex
	client        operator.ClientInfo
	phase         string
	lastHeartbeat time.Time
	expiresAt     time.Time
	cc            *clientConn // nil while disconnected
	subs          map[string]*sub
	pods          []Pod
	primary       Pod
	primaryReason string
	held          map[string]Pod // pods whose agent connection it holds
	ended         bool
	expiry        *time.Timer
	nextSub       uint64

	// pt is the target as policies select it; pols the policies that
	// apply now, polErr the denial of an invalid one (guarded by mu).
	pt     policy.Target
	pols   policy.Set
	polErr *policy.Denial
	dials  dials

	counters struct {
		inConns, inReqs, outConns, bytesIn, bytesOut atomic.Uint64
	}
}

// sub is one of the session's subscriptions, on every pod of the target.
type sub struct {
	id    string
	spec  wire.Subscribe
	since time.Time
	// perPod and gone are guarded by session.mu. gone is set when the
	// subscription was taken away (an override) while pods were being
	// subscribed.
	perPod map[string]*agentclient.Subscription
	gone   bool
}

// newSessionName returns "s-" and 10 random lowercase letters and digits.
func newSessionName() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 10)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "s-" + string(b)
}

// validSessionName reports whether name is one newSessionName could
// have made.
func validSessionName(name string) bool {
	rest, ok := strings.CutPrefix(name, "s-")
	if !ok || len(rest) != 10 {
		return false
	}
	for _, c := range rest {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// rename gives a session that is not yet registered another name.
func (s *session) rename(name string) {
	s.name = name
	s.log = s.b.log.With("session", s.name, "user", s.user.Username, "target", s.ns+"/"+s.target)
}

// newSession starts following the target's pods and waits for the first
// set. The session is not yet registered; it is named name, or a new
// name when empty.
func (b *Broker) newSession(ctx context.Context, who operator.UserInfo, ns, target string, hello *wire.Hello, name string, pt policy.Target, pols policy.Set) (*session, error) {
	if name == "" {
		name = newSessionName()
	}
	s := &session{
		b: b, name: name, ns: ns, target: target, user: who,
		uid: types.UID(rand.Text()), start: time.Now(), subs: map[string]*sub{}, held: map[string]Pod{},
		client: clientInfo(hello), pt: pt, pols: pols,
	}
	s.log = b.log.With("session", s.name, "user", who.Username, "target", ns+"/"+target)
	s.ctx, s.cancel = context.WithCancel(b.ctx)
	ch, release, err := b.feeds.subscribe(ns, target)
	if err != nil {
		s.cancel()
		return nil, err
	}
	fail := func(err error) (*session, error) {
		release()
		s.cancel()
		return nil, err
	}
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var pods []Pod
	select {
	case pods = <-ch:
	case <-wait.Done():
		return fail(wire.Errorf(wire.CodeUnavailable, "the operator could not list the pods of %s in namespace %s in time: %v", targetRef(target), ns, wait.Err()))
	}
	if len(pods) == 0 {
		return fail(wire.Errorf(wire.CodeUnavailable, "%s in namespace %s has no ready pod; wait for one (kubectl get pods -n %s) and try again", targetRef(target), ns, ns))
	}
	s.pods = sortPods(pods)
	s.primary, s.primaryReason = s.pods[0], "oldest ready pod"
	// The session's end (s.ctx) ends its subscription to the pods.
	stop := context.AfterFunc(s.ctx, release)
	if !b.goTracked(func() { s.follow(ch) }) {
		stop()
		return fail(errStopping)
	}
	return s, nil
}

// errStopping refuses new sessions once the broker is closing.
var errStopping = wire.Errorf(wire.CodeUnavailable, "the operator is stopping; try again in a moment")

func drain(ch <-chan []Pod) {
	go func() {
		for range ch {
		}
	}()
}

func clientInfo(h *wire.Hello) operator.ClientInfo {
	return operator.ClientInfo{Name: h.Client.Name, Host: h.Client.Host, Tool: h.Client.Tool, Version: h.Client.Version}
}

// targetRef turns a target's object name ("deployment.api") into the form
// users type ("deployment/api").
func targetRef(target string) string {
	kind, name, ok := strings.Cut(target, ".")
	if !ok {
		return target
	}
	return kind + "/" + name
}

// sortPods orders pods oldest first (then by name): the first is the
// primary.
func sortPods(pods []Pod) []Pod {
	pods = slices.Clone(pods)
	slices.SortFunc(pods, func(a, b Pod) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return pods
}

// agent returns pod's agent connection, taking a pool reference the
// session keeps until the pod goes or the session ends.
func (s *session) agent(ctx context.Context, pod Pod) (*agentclient.Client, error) {
	c, err := s.b.pool.acquire(ctx, pod)
	if err != nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "%v", err)
	}
	s.mu.Lock()
	_, had := s.held[pod.key()]
	if !had && !s.ended {
		s.held[pod.key()] = pod
	}
	keep := !had && !s.ended
	s.mu.Unlock()
	if !keep {
		s.b.pool.release(pod)
	}
	return c, nil
}

// primaryAgent is the agent that answers the session's control requests
// and dials.
func (s *session) primaryAgent(ctx context.Context) (*agentclient.Client, Pod, error) {
	s.mu.Lock()
	p := s.primary
	s.mu.Unlock()
	c, err := s.agent(ctx, p)
	return c, p, err
}

// warm reaches the agents of pods the session does not hold yet, in
// parallel; failures are left for the subscription to report.
func (s *session) warm(pods []Pod) {
	var wg sync.WaitGroup
	for _, p := range pods {
		s.mu.Lock()
		_, held := s.held[p.key()]
		s.mu.Unlock()
		if held {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.agent(s.ctx, p); err != nil {
				s.log.Warn("reach a pod's agent", "pod", p.Name, "err", err)
			}
		}()
	}
	wg.Wait()
}

// follow applies pod changes until the session ends.
func (s *session) follow(ch <-chan []Pod) {
	for pods := range ch {
		s.setPods(pods)
	}
}

// setPods subscribes the session's subscriptions on new pods and drops
// them from gone ones; the primary stays while it is there.
func (s *session) setPods(pods []Pod) {
	// Reach new pods' agents first, without holding up the session's
	// other changes: starting an agent can take a while (an image pull),
	// and a client that leaves meanwhile must get its traffic back at once.
	s.warm(pods)
	s.subMu.Lock()
	defer s.subMu.Unlock()
	pods = sortPods(pods)
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	old := map[string]bool{}
	for _, p := range s.pods {
		old[p.key()] = true
	}
	now := map[string]bool{}
	var added []Pod
	for _, p := range pods {
		now[p.key()] = true
		if !old[p.key()] {
			added = append(added, p)
		}
	}
	var removed []Pod
	for _, p := range s.pods {
		if !now[p.key()] {
			removed = append(removed, p)
		}
	}
	if len(added) == 0 && len(removed) == 0 {
		s.mu.Unlock()
		return
	}
	s.pods = pods
	if len(pods) > 0 && !now[s.primary.key()] {
		s.log.Info("the primary pod went away", "was", s.primary.Name, "now", pods[0].Name)
		s.primaryReason = fmt.Sprintf("oldest ready pod (%s, the previous primary, went away)", s.primary.Name)
		s.primary = pods[0]
	}
	subs := s.subList()
	var drop []*agentclient.Subscription
	var release []Pod
	for _, p := range removed {
		for _, sb := range subs {
			if as := sb.perPod[p.key()]; as != nil {
				drop = append(drop, as)
				delete(sb.perPod, p.key())
			}
		}
		if _, ok := s.held[p.key()]; ok && p.key() != s.primary.key() {
			delete(s.held, p.key())
			release = append(release, p)
		}
	}
	cc := s.cc
	s.mu.Unlock()

	closeAgentSubs(drop)
	for _, p := range release {
		s.b.pool.release(p)
	}
	for _, p := range added {
		for _, sb := range subs {
			if err := s.subscribeOn(s.ctx, sb, p); err != nil {
				s.log.Warn("subscribe on a new pod", "pod", p.Name, "port", sb.spec.Port, "err", err)
			}
		}
	}
	names := podNames(pods)
	s.log.Info("pods changed", "pods", names)
	if cc != nil {
		cc.event(&wire.Event{Kind: wire.EventPodsChanged, Pods: names,
			Message: fmt.Sprintf("%s now has %d ready pod(s): %s", targetRef(s.target), len(names), strings.Join(names, ", "))})
	}
	s.b.reg.publish(backend.Modified, s)
}

// Retry pauses of recover: the agent may take a while to come back.
var (
	recoverFirst = 200 * time.Millisecond
	recoverMax   = 30 * time.Second
)

// recover subscribes the session's subscriptions on pod again after the
// connection to its agent was lost, retrying until it works, the pod
// leaves the target or the session ends.
func (s *session) recover(pod Pod) {
	delay := recoverFirst
	for {
		err := s.resubscribe(pod)
		if err == nil {
			return
		}
		s.log.Warn("subscribe again on a pod whose agent connection was lost", "pod", pod.Name, "err", err, "retryIn", delay)
		t := time.NewTimer(delay)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, recoverMax)
	}
}

func (s *session) resubscribe(pod Pod) error {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.mu.Lock()
	present := slices.ContainsFunc(s.pods, func(p Pod) bool { return p.key() == pod.key() })
	if s.ended || !present {
		s.mu.Unlock()
		return nil
	}
	subs := s.subList()
	var todo []*sub
	for _, sb := range subs {
		as := sb.perPod[pod.key()]
		if as == nil || as.Closed() {
			delete(sb.perPod, pod.key())
			todo = append(todo, sb)
		}
	}
	s.mu.Unlock()
	for _, sb := range todo {
		if err := s.subscribeOn(s.ctx, sb, pod); err != nil {
			return err
		}
	}
	if len(todo) > 0 {
		s.log.Info("subscribed again on a pod after its agent connection was lost", "pod", pod.Name, "subscriptions", len(todo))
	}
	return nil
}

// subList returns the subscriptions in id order; s.mu is held.
func (s *session) subList() []*sub {
	out := make([]*sub, 0, len(s.subs))
	for _, sb := range s.subs {
		out = append(out, sb)
	}
	slices.SortFunc(out, func(a, b *sub) int { return a.since.Compare(b.since) })
	return out
}

func podNames(pods []Pod) []string {
	out := make([]string, len(pods))
	for i, p := range pods {
		out[i] = p.Name
	}
	return out
}

// podKeys lists the pods whose agents the session holds.
func (s *session) podKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.held))
	for k := range s.held {
		out = append(out, k)
	}
	return out
}

// disconnect handles the end of the client connection cc: the agent
// subscriptions go at once, the locks stay reserved for the TTL. The
// phase says Disconnected only once the agents have let go, so whoever
// sees it sees the traffic back at the application.
func (s *session) disconnect(cc *clientConn) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.mu.Lock()
	if s.cc != cc || s.ended {
		s.mu.Unlock()
		return
	}
	s.cc = nil
	subs := s.subs
	s.subs = map[string]*sub{}
	drop := agentSubsOf(subs)
	s.mu.Unlock()
	closeAgentSubs(drop)
	until := time.Now().Add(s.b.cfg.SessionTTL)
	s.b.locks.Reserve(s.name, until)
	s.mu.Lock()
	if s.ended || s.cc != nil {
		s.mu.Unlock()
		return
	}
	s.phase = operator.PhaseDisconnected
	s.expiresAt = until
	s.expiry = time.AfterFunc(s.b.cfg.SessionTTL, s.expire)
	s.mu.Unlock()
	s.log.Info("client disconnected; locks reserved", "until", until)
	s.b.reg.publish(backend.Modified, s)
}

// expire ends a session still disconnected when its TTL passed.
func (s *session) expire() {
	s.mu.Lock()
	expired := s.cc == nil && !s.ended && !time.Now().Before(s.expiresAt)
	s.mu.Unlock()
	if expired {
		s.end("the session's lease expired")
	}
}

// end ends the session: its client is told why and disconnected, its
// subscriptions and locks released, its agents given back.
func (s *session) end(reason string) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	cc := s.cc
	s.cc = nil
	subs := s.subs
	s.subs = map[string]*sub{}
	held := s.held
	s.held = map[string]Pod{}
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.mu.Unlock()
	s.log.Info("session ended", "reason", reason)
	s.record(Record{Action: ActionSessionEnd, Decision: DecisionAllow, Reason: reason, Duration: time.Since(s.start)})
	if cc != nil {
		cc.endWith(&wire.Event{Kind: wire.EventSessionEnded, Message: fmt.Sprintf("session %s ended: %s", s.name, reason)})
	}
	closeAgentSubs(agentSubsOf(subs))
	if s.b.cfg.Splits != nil && !s.b.isClosed() {
		s.b.cfg.Splits.SessionEnded(s.ns, s.name)
	}
	s.b.locks.ReleaseSession(s.name)
	for _, p := range held {
		s.b.pool.release(p)
	}
	s.cancel()
	s.b.reg.publish(backend.Deleted, s)
}

func agentSubsOf(subs map[string]*sub) []*agentclient.Subscription {
	var out []*agentclient.Subscription
	for _, sb := range subs {
		for _, as := range sb.perPod {
			out = append(out, as)
		}
		sb.perPod = map[string]*agentclient.Subscription{}
	}
	return out
}

// closeAgentSubs unsubscribes at the agents, in parallel: with many pods
// the traffic should return to the application everywhere at once.
func closeAgentSubs(subs []*agentclient.Subscription) {
	var wg sync.WaitGroup
	for _, as := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			as.Close(ctx)
		}()
	}
	wg.Wait()
}

// object is the session as the API shows it.
func (s *session) object() operator.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj := operator.Session{
		TypeMeta: metav1.TypeMeta{Kind: "Session", APIVersion: operator.SchemeGroupVersion.String()},
		ObjectMeta: metav1.ObjectMeta{
			Name: s.name, Namespace: s.ns, UID: s.uid, CreationTimestamp: metav1.NewTime(s.start),
			ResourceVersion: strconv.FormatUint(s.rv.Load(), 10),
		},
		Spec: operator.SessionSpec{User: s.user, Client: s.client, Target: s.target},
		Status: operator.SessionStatus{
			Phase: s.phase, Pods: podNames(s.pods), Primary: s.primary.Name, PrimaryReason: s.primaryReason,
			StartTime: metav1.NewTime(s.start), LastHeartbeat: metav1.NewTime(s.lastHeartbeat),
			Counters: operator.Counters{
				IncomingConnections: s.counters.inConns.Load(), IncomingRequests: s.counters.inReqs.Load(),
				OutgoingConnections: s.counters.outConns.Load(),
				BytesIn:             s.counters.bytesIn.Load(), BytesOut: s.counters.bytesOut.Load(),
			},
		},
	}
	if !s.expiresAt.IsZero() && s.cc == nil {
		t := metav1.NewTime(s.expiresAt)
		obj.Status.ExpiresAt = &t
	}
	bySub := map[string]bool{}
	for _, sb := range s.subList() {
		ps := operator.PortStatus{Port: sb.spec.Port, Mode: sb.spec.Mode, Filter: sb.spec.Filter}
		if sb.spec.Mode == wire.ModeSteal {
			since := metav1.NewTime(sb.since)
			ps.Lock, ps.Since = true, &since
		}
		bySub[sb.id] = true
		obj.Status.Ports = append(obj.Status.Ports, ps)
	}
	// Locks kept for a disconnected session, not (yet) subscribed again.
	for _, l := range s.b.locks.Session(s.name) {
		if !bySub[l.Subscription] {
			since := metav1.NewTime(l.Since)
			obj.Status.Ports = append(obj.Status.Ports, operator.PortStatus{
				Port: l.Port, Mode: wire.ModeSteal, Filter: l.Filter, Lock: true, Since: &since,
			})
		}
	}
	if s.b.cfg.Splits != nil {
		obj.Status.QueueSplits = s.b.cfg.Splits.SessionSplits(s.ns, s.name)
	}
	return obj
}
