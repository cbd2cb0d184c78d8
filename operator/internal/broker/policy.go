package broker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/operator/internal/locks"
	"github.com/remocal/remocal/protocol/policy"
	"github.com/remocal/remocal/protocol/wire"
)

// Policies says which policies (protocol/policy) apply to a target. The
// operator's implementation follows the policy resources with an
// informer; the broker asks at connect and again whenever
// Broker.PoliciesChanged says they changed.
type Policies interface {
	// For returns the policies that apply to t; a *policy.Denial when
	// one that might apply cannot be evaluated (fail closed).
	For(t policy.Target) (policy.Set, error)
}

// TargetInfo completes a target for policy selection: its labels and
// default container.
type TargetInfo func(ctx context.Context, namespace, target string) (policy.Target, error)

// policyTarget is the session's target as policies select it.
func (b *Broker) policyTarget(ctx context.Context, ns, target string) (policy.Target, error) {
	kind, name, _ := strings.Cut(target, ".")
	t := policy.Target{Namespace: ns, Kind: kind, Name: name}
	if b.cfg.TargetInfo == nil {
		return t, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	got, err := b.cfg.TargetInfo(ctx, ns, target)
	if err != nil {
		return t, err
	}
	got.Namespace, got.Kind, got.Name = ns, kind, name
	return got, nil
}

// policiesFor evaluates which policies apply to t.
func (b *Broker) policiesFor(t policy.Target) (policy.Set, error) {
	if b.cfg.Policies == nil {
		return nil, nil
	}
	return b.cfg.Policies.For(t)
}

// policies is the set that applies to the session now.
func (s *session) policies() (policy.Set, *policy.Denial) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pols, s.polErr
}

// deny records a denial (audit, metrics) and returns it as the wire error
// the client gets.
func (s *session) deny(d *policy.Denial, what string) *wire.Error {
	s.record(Record{Action: ActionPolicyDenial, Decision: DecisionDeny, What: what, Reason: d.Message, Policy: &d.Policy, Rule: d.Rule})
	return d.Wire()
}

// checkSubscribe applies the policies to a subscription request.
func (s *session) checkSubscribe(req *wire.Subscribe) *wire.Error {
	set, invalid := s.policies()
	if invalid != nil {
		return s.deny(invalid, fmt.Sprintf("subscribe port %d", req.Port))
	}
	if d := set.Subscribe(s.user.Username, targetRef(s.target), *req); d != nil {
		return s.deny(d, fmt.Sprintf("%s port %d", req.Mode, req.Port))
	}
	return nil
}

// checkQueueSplit applies the policies of the session's target to a
// queue split.
func (s *session) checkQueueSplit(req *wire.QueueSplit) *wire.Error {
	set, invalid := s.policies()
	what := fmt.Sprintf("split queue %s/%s", req.Consumer, req.Queue)
	if invalid != nil {
		return s.deny(invalid, what)
	}
	if d := set.QueueSplit(targetRef(s.target), *req); d != nil {
		return s.deny(d, what)
	}
	return nil
}

// checkRequest applies the policies to a control request; it may rewrite
// an env request (the excluded variables).
func (s *session) checkRequest(msg wire.Message) (wire.Message, *wire.Error) {
	set, invalid := s.policies()
	if invalid != nil {
		return nil, s.deny(invalid, msg.MessageType())
	}
	var p string
	write := false
	switch m := msg.(type) {
	case *wire.EnvGet:
		ex := set.EnvExclude()
		if len(ex) == 0 {
			return msg, nil
		}
		c := *m
		c.Exclude = append(append([]string(nil), m.Exclude...), ex...)
		return &c, nil
	case *wire.FileRead:
		p = m.Path
	case *wire.FileStat:
		p = m.Path
	case *wire.FileReadlink:
		p = m.Path
	case *wire.FileReaddir:
		p = m.Path
	case *wire.FileAccess:
		p, write = m.Path, m.Mode&2 != 0
	default:
		return msg, nil
	}
	if d := set.File(p, write); d != nil {
		return nil, s.deny(d, msg.MessageType()+" "+p)
	}
	return msg, nil
}

// filterResult holds an env answer to the policies whatever the agent did.
func (s *session) filterResult(res wire.Message) {
	if r, ok := res.(*wire.EnvGetResult); ok {
		set, _ := s.policies()
		set.FilterEnv(r.Vars)
	}
}

// checkDial applies the policies to an outgoing connection.
func (s *session) checkDial(ctx context.Context, d *wire.Dial) *wire.Error {
	set, invalid := s.policies()
	if invalid != nil {
		return s.deny(invalid, "dial "+d.Address)
	}
	if len(set) == 0 {
		return nil
	}
	ap, err := policy.DialAddr(d.Address)
	if err != nil {
		return wire.Errorf(wire.CodeInvalid, "dial address %q is not numeric: %v", d.Address, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if den := set.Dial(ctx, s.b.resolver(), ap); den != nil {
		return s.deny(den, "dial "+d.Network+" "+d.Address)
	}
	return nil
}

func (b *Broker) resolver() policy.Resolver {
	if b.cfg.Resolver != nil {
		return b.cfg.Resolver
	}
	return net.DefaultResolver
}

// dials are a session's open outgoing connections, so a policy that
// starts blocking their destination closes them.
type dials struct {
	mu sync.Mutex
	m  map[net.Conn]netip.AddrPort
}

func (d *dials) add(c net.Conn, ap netip.AddrPort) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[net.Conn]netip.AddrPort{}
	}
	d.m[c] = ap
}

func (d *dials) remove(c net.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.m, c)
}

func (d *dials) snapshot() map[net.Conn]netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[net.Conn]netip.AddrPort, len(d.m))
	for c, ap := range d.m {
		out[c] = ap
	}
	return out
}

// PoliciesChanged re-evaluates every session's policies: a session loses
// what the policies now forbid (its client is told, with the policy and
// rule): subscriptions go, open outgoing connections are closed; later
// env, file and dial requests are checked against the new set.
//
// The targets' labels are read again first (once per target), so a policy
// selecting by labels sees them as they are now.
func (b *Broker) PoliciesChanged() {
	byTarget := map[string][]*session{}
	for _, s := range b.reg.all() {
		k := s.ns + "/" + s.target
		byTarget[k] = append(byTarget[k], s)
	}
	for _, sessions := range byTarget {
		b.goTracked(func() {
			first := sessions[0]
			first.mu.Lock()
			pt := first.pt
			first.mu.Unlock()
			if b.cfg.TargetInfo != nil {
				if now, err := b.policyTarget(b.ctx, first.ns, first.target); err == nil {
					pt = now
				} else {
					first.log.Warn("read the target's labels again for the policies; keeping the old ones", "err", err)
				}
			}
			for _, s := range sessions {
				s.reapplyPolicies(pt)
			}
		})
	}
}

func (s *session) reapplyPolicies(pt policy.Target) {
	set, err := s.b.policiesFor(pt)
	var invalid *policy.Denial
	if err != nil {
		invalid = asDenial(err)
	}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.pt, s.pols, s.polErr = pt, set, invalid
	type loss struct {
		sb *sub
		d  *policy.Denial
	}
	var lost []loss
	for _, sb := range s.subList() {
		d := invalid
		if d == nil {
			spec := sb.spec
			d = set.Subscribe(s.user.Username, targetRef(s.target), spec)
		}
		if d != nil {
			lost = append(lost, loss{sb, d})
		}
	}
	cc := s.cc
	s.mu.Unlock()
	for _, l := range lost {
		s.dropSub(l.sb)
		s.b.locks.Release(locks.Key{Namespace: s.ns, Target: s.target, Port: l.sb.spec.Port}, s.name, l.sb.id)
		msg := fmt.Sprintf("port %d of %s no longer comes to this session: %v", l.sb.spec.Port, targetRef(s.target), l.d)
		s.log.Info("subscription removed by a policy", "subscription", l.sb.id, "port", l.sb.spec.Port, "policy", l.d.Policy.String(), "rule", l.d.Rule)
		s.record(Record{Action: ActionPolicyDenial, Decision: DecisionRevoke, What: fmt.Sprintf("%s port %d", l.sb.spec.Mode, l.sb.spec.Port),
			Reason: l.d.Message, Policy: &l.d.Policy, Rule: l.d.Rule})
		if cc != nil {
			ev := &wire.Event{Kind: wire.EventSubscriptionLost, Subscription: l.sb.id, Port: l.sb.spec.Port, Message: msg}
			s.b.goTracked(func() { cc.event(ev) })
		}
	}
	for c, ap := range s.dials.snapshot() {
		d := invalid
		if d == nil {
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			d = set.Dial(ctx, s.b.resolver(), ap)
			cancel()
		}
		if d != nil {
			s.log.Info("outgoing connection closed by a policy", "to", ap.String(), "policy", d.Policy.String(), "rule", d.Rule)
			s.record(Record{Action: ActionPolicyDenial, Decision: DecisionRevoke, What: "dial " + ap.String(),
				Reason: d.Message, Policy: &d.Policy, Rule: d.Rule})
			c.Close()
		}
	}
	if len(lost) > 0 {
		s.b.reg.publish(backend.Modified, s)
	}
}

func asDenial(err error) *policy.Denial {
	if d, ok := err.(*policy.Denial); ok {
		return d
	}
	return &policy.Denial{Policy: policy.Ref{Kind: "policies"}, Rule: policy.RuleInvalid, Message: err.Error()}
}
