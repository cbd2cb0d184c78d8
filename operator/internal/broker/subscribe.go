package broker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/relay"
	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/operator/internal/locks"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/wire"
)

// subscribe takes the lock a steal needs (overriding its holders if asked
// and allowed), then subscribes on every pod's agent.
func (s *session) subscribe(ctx context.Context, cc *clientConn, req *wire.Subscribe) (*wire.SubscribeResult, error) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.mu.Lock()
	if s.ended || s.cc != cc {
		s.mu.Unlock()
		return nil, wire.Errorf(wire.CodeUnavailable, "the session is ending")
	}
	s.nextSub++
	id := fmt.Sprintf("o%d", s.nextSub)
	s.mu.Unlock()

	if werr := s.checkSubscribe(req); werr != nil {
		return nil, werr
	}
	spec := *req
	spec.Override = false // the agents know nothing of it
	override := false
	if req.Mode == wire.ModeSteal && req.Override {
		ok, err := s.b.cfg.Authorizer.Allowed(ctx, s.user, operator.VerbOverride, s.ns, operator.ResourceTargets, "", s.target)
		if err != nil {
			return nil, wire.Errorf(wire.CodeUnavailable, "could not check whether you may override port %d of %s: %v", req.Port, targetRef(s.target), err)
		}
		if !ok {
			s.record(Record{Action: ActionOverride, Decision: DecisionDeny, What: fmt.Sprintf("steal port %d", req.Port), Reason: "RBAC: no override on targets"})
			return nil, wire.Errorf(wire.CodePermissionDenied,
				"you (%s) may not take port %d of %s from its holder: onConflict: override needs the verb override on targets in namespace %s (the remocal admin role); use abort or continue, or ask an administrator",
				s.user.Username, req.Port, targetRef(s.target), s.ns)
		}
		override = true
	}
	key := locks.Key{Namespace: s.ns, Target: s.target, Port: req.Port}
	s.mu.Lock()
	owner := locks.Owner{User: s.user.Username, Client: s.client.Name, Session: s.name}
	s.mu.Unlock()
	held, evicted, err := s.b.locks.Acquire(locks.Request{
		Key: key, Owner: owner, Subscription: id, Mode: req.Mode, Filter: req.Filter, Override: override,
	})
	var ce *locks.ConflictError
	if errors.As(err, &ce) {
		s.record(Record{Action: ActionSubscribe, Decision: DecisionDeny, What: fmt.Sprintf("%s port %d %s", req.Mode, req.Port, req.Filter.String()), Reason: ce.Error(), Conflict: true})
		return nil, ce.Wire()
	}
	if err != nil {
		return nil, err
	}
	if len(evicted) > 0 {
		by := locks.Lock{Key: key, Owner: owner, Subscription: id, Filter: req.Filter, Since: time.Now()}
		for _, l := range evicted {
			if victim := s.b.reg.get(l.Namespace, l.Session); victim != nil {
				victim.lose(l.Subscription, by)
			}
		}
	}
	since := time.Now()
	if req.Mode == wire.ModeSteal {
		since = held.Since // a resumed session's lock keeps its time
	}
	sb := &sub{id: id, spec: spec, since: since, perPod: map[string]*agentclient.Subscription{}}
	s.mu.Lock()
	s.subs[id] = sb
	pods := append([]Pod(nil), s.pods...)
	s.mu.Unlock()
	for _, p := range pods {
		if err := s.subscribeOn(ctx, sb, p); err != nil {
			s.dropSub(sb)
			s.b.locks.Release(key, s.name, id)
			return nil, err
		}
	}
	action := ActionSubscribe
	if len(evicted) > 0 {
		action = ActionOverride
	}
	s.record(Record{Action: action, Decision: DecisionAllow, What: fmt.Sprintf("%s port %d %s", req.Mode, req.Port, req.Filter.String())})
	s.log.Info("subscribed", "subscription", id, "port", req.Port, "mode", req.Mode, "filter", req.Filter.String(), "override", override, "pods", len(pods))
	s.b.reg.publish(backend.Modified, s)
	return &wire.SubscribeResult{ID: id}, nil
}

// subscribeOn subscribes sb on pod's agent; the caller holds subMu.
func (s *session) subscribeOn(ctx context.Context, sb *sub, pod Pod) error {
	c, err := s.agent(ctx, pod)
	if err != nil {
		return err
	}
	as, err := c.Subscribe(ctx, sb.spec, agentclient.HandlerFunc(func(ctx context.Context, in *agentclient.Incoming) {
		s.deliver(ctx, sb, in)
	}))
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			if held := s.b.agentConflict(pod, we); held != nil {
				return held
			}
			return &wire.Error{Code: we.Code, Message: fmt.Sprintf("pod %s: %s", pod.Name, we.Message), Errno: we.Errno, Holder: we.Holder}
		}
		return wire.Errorf(wire.CodeUnavailable, "subscribe on pod %s: %v", pod.Name, err)
	}
	s.mu.Lock()
	keep := !sb.gone && !s.ended && s.subs[sb.id] == sb
	if keep {
		sb.perPod[pod.key()] = as
	}
	s.mu.Unlock()
	if !keep { // taken away meanwhile
		closeAgentSubs([]*agentclient.Subscription{as})
	}
	return nil
}

// dropSub removes sb from the session and its agents.
func (s *session) dropSub(sb *sub) {
	s.mu.Lock()
	if s.subs[sb.id] == sb {
		delete(s.subs, sb.id)
	}
	sb.gone = true
	drop := agentSubsOf(map[string]*sub{sb.id: sb})
	s.mu.Unlock()
	closeAgentSubs(drop)
}

func (s *session) unsubscribe(ctx context.Context, req *wire.Unsubscribe) (*wire.UnsubscribeResult, error) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.mu.Lock()
	sb := s.subs[req.ID]
	s.mu.Unlock()
	if sb == nil {
		return nil, wire.Errorf(wire.CodeNotFound, "no subscription %q in session %s", req.ID, s.name)
	}
	s.dropSub(sb)
	s.b.locks.Release(locks.Key{Namespace: s.ns, Target: s.target, Port: sb.spec.Port}, s.name, sb.id)
	s.log.Info("unsubscribed", "subscription", sb.id, "port", sb.spec.Port)
	s.b.reg.publish(backend.Modified, s)
	return &wire.UnsubscribeResult{}, nil
}

// lose takes subscription id away from the session (another session
// overrode it) and tells its client who took it. It does not take subMu:
// the overriding session holds its own, and two sessions overriding each
// other must not wait for each other; sub.gone stops a concurrent pod
// change from subscribing it again.
func (s *session) lose(id string, by locks.Lock) {
	s.mu.Lock()
	sb := s.subs[id]
	var drop []*agentclient.Subscription
	if sb != nil {
		delete(s.subs, id)
		sb.gone = true
		drop = agentSubsOf(map[string]*sub{id: sb})
	}
	cc := s.cc
	s.mu.Unlock()
	closeAgentSubs(drop)
	held := "without a filter"
	if by.Filter != nil {
		held = "with filter " + by.Filter.String()
	}
	port := by.Port
	msg := fmt.Sprintf("port %d of %s was taken over by %s (%s, session %s, %s) with an override; its traffic no longer comes to this session",
		port, targetRef(s.target), by.User, by.Client, by.Session, held)
	s.log.Info("subscription lost to an override", "subscription", id, "port", port, "by", by.User)
	if cc != nil && sb != nil {
		// Not on the overriding session's request: a victim whose client
		// reads slowly must not hold it up.
		ev := &wire.Event{Kind: wire.EventSubscriptionLost, Subscription: id, Port: port, By: by.Holder(), Message: msg}
		s.b.goTracked(func() { cc.event(ev) })
	}
	s.b.reg.publish(backend.Modified, s)
}

// deliver hands one incoming connection or request from an agent to the
// client, under the client's subscription id, and splices the bytes.
func (s *session) deliver(ctx context.Context, sb *sub, in *agentclient.Incoming) {
	defer in.Stream.Close()
	s.mu.Lock()
	cc := s.cc
	s.mu.Unlock()
	if cc == nil || cc.mux == nil {
		// Between the client's departure and the unsubscribe: the agent
		// treats a refused delivery like an unreachable client.
		relay.Abort(in.Stream)
		return
	}
	if c := in.Connection; c != nil && c.Protocol == wire.ProtocolH2C && c.Mode == wire.ModeMirror && !wire.HasCapability(cc.caps, wire.CapHTTP2) {
		// Mirrored HTTP/2 streams are raw h2c, which a client older than
		// incoming.http2 would read as mirror chunks: it gets none, as
		// from an agent.
		relay.Abort(in.Stream)
		return
	}
	if c := in.Connection; c != nil && c.HTTP1Requests() {
		s.deliverRequests(ctx, sb, cc, in)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	st, err := cc.openStream(ctx)
	cancel()
	if err != nil {
		relay.Abort(in.Stream)
		return
	}
	defer st.Close()
	var hdr wire.Message
	if in.Connection != nil {
		h := *in.Connection
		h.Subscription = sb.id
		hdr = &h
		s.counters.inConns.Add(1)
	} else {
		h := *in.Request
		h.Subscription = sb.id
		hdr = &h
		s.counters.inReqs.Add(1)
	}
	if err := wire.WriteMessage(st, 0, hdr); err != nil {
		relay.Abort(st)
		relay.Abort(in.Stream)
		return
	}
	mode := &s.b.traffic[modeMirror]
	if sb.spec.Mode == wire.ModeSteal {
		mode = &s.b.traffic[modeSteal]
	}
	mode.requests.Add(1)
	var n atomic.Uint64
	relay.Conns(counting(counting(in.Stream, &s.counters.bytesIn), &n), counting(counting(st, &s.counters.bytesOut), &n))
	mode.bytes.Add(n.Load())
}

// agentConflict explains an agent's conflict error whose holder is one of
// the operator's own subscriptions there: another session's, on another
// target that shares the pod (a Service and its Deployment), which the
// lock table (by target) did not see. The agent names only the operator;
// this names the session. Nil when the holder is not the operator's.
func (b *Broker) agentConflict(pod Pod, we *wire.Error) *wire.Error {
	if we.Code != wire.CodeConflict || we.Holder == nil {
		return nil
	}
	for _, s := range b.reg.all() {
		s.mu.Lock()
		var found *sub
		for _, sb := range s.subs {
			if as := sb.perPod[pod.key()]; as != nil && as.ID() == we.Holder.Subscription {
				found = sb
			}
		}
		owner := locks.Owner{User: s.user.Username, Client: s.client.Name, Session: s.name}
		s.mu.Unlock()
		if found == nil {
			continue
		}
		l := locks.Lock{Key: locks.Key{Namespace: s.ns, Target: s.target, Port: found.spec.Port}, Owner: owner,
			Subscription: found.id, Filter: found.spec.Filter, Since: found.since}
		return &wire.Error{
			Code: wire.CodeConflict,
			Message: fmt.Sprintf("port %d of pod %s is already stolen through %s %s; use a filter that does not overlap theirs, mirror mode, or wait for their session to end",
				found.spec.Port, pod.Name, targetRef(s.target), l.Describe()),
			Holder: l.Holder(),
		}
	}
	return nil
}
