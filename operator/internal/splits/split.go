package splits

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remocal/remocal/operator/internal/queuesplit"
	"github.com/remocal/remocal/operator/internal/workloadenv"
	qs "github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/protocol/wire"
)

// split is one queue of a consumer while sessions split it. Its op mutex
// serialises the steps of its life (add, remove, teardown, resume), which
// talk to the broker and the API server and may take a rollout's time.
type split struct {
	m                        *Manager
	ns, consumer, queue, key string

	op sync.Mutex
	// Guarded by op. running says a router routes (Run); spec, ref and
	// broker are set while running or restoring.
	running   bool
	restoring bool
	spec      qs.Queue
	ref       workloadenv.Ref
	broker    queuesplit.Broker
	router    *queuesplit.Router
	stop      context.CancelFunc // ends Run and the rollout wait
	done      chan struct{}      // closed when they returned
	sessions  []*member

	// view is what Status shows, replaced at each recorded change so
	// that reading it never waits for a step in progress.
	view atomic.Pointer[view]
}

// view is a split as last recorded, with the router that counts.
type view struct {
	status qs.QueueSplitStatus
	router *queuesplit.Router
}

// member is a session splitting the queue.
type member struct {
	qs.SessionSplit
	env map[string]string
	// lastSeen is when the session broker last knew the session.
	lastSeen time.Time
}

func (s *split) has(session string) bool {
	return slices.ContainsFunc(s.sessions, func(m *member) bool { return m.Session == session })
}

// add starts the split if it is not running and adds the session. On any
// error nothing of the session's stays (and a split it started is undone).
func (s *split) add(ctx context.Context, rqc *qs.RemocalQueueConsumer, q qs.Queue, ss qs.SessionSplit) (map[string]string, error) {
	if i := slices.IndexFunc(s.sessions, func(m *member) bool { return m.Session == ss.Session }); i >= 0 {
		// The client asks again after a reconnect or a leader handover.
		return s.sessions[i].env, nil
	}
	if s.restoring {
		return nil, unavailable("queue %s of %s/%s is being given back to its workload (a rollout is in progress); try again in a moment", q.Name, s.ns, s.consumer)
	}
	if !s.running {
		if err := s.startWith(ctx, rqc, q, nil); err != nil {
			s.m.log.Warn("queue split: could not start", "queue", s.key, "err", err)
			return nil, unavailable("splitting queue %s of %s/%s: %v", q.Name, s.ns, s.consumer, err)
		}
	}
	env, err := s.join(ctx, ss)
	if err != nil {
		if len(s.sessions) == 0 {
			s.teardown(s.m.ctx)
		}
		return nil, err
	}
	return env, nil
}

// join adds a session to the running router and records it.
func (s *split) join(ctx context.Context, ss qs.SessionSplit) (map[string]string, error) {
	sp := qs.Split{Consumer: s.consumer, Queue: s.queue, Mode: ss.Mode, Filter: ss.Filter}
	env, err := s.router.AddSession(ctx, ss.Session, sp)
	if err != nil {
		var ce *queuesplit.ConflictError
		if errors.As(err, &ce) {
			who := ce.Holder
			if i := slices.IndexFunc(s.sessions, func(m *member) bool { return m.Session == ce.Holder }); i >= 0 {
				who = s.sessions[i].User + " (session " + ce.Holder + ")"
			}
			return nil, wire.Errorf(wire.CodeConflict, "queue %s of %s/%s is already stolen with %s by %s since %s; steal with a filter that does not overlap theirs, use mirror mode, or wait for their session to end",
				s.queue, s.ns, s.consumer, ce.HolderFilter, who, ce.Since.UTC().Format(time.RFC3339))
		}
		return nil, unavailable("splitting queue %s of %s/%s for session %s: %v", s.queue, s.ns, s.consumer, ss.Session, err)
	}
	if ss.Since.IsZero() {
		ss.Since = metav1.NewTime(time.Now().Truncate(time.Second))
	}
	mem := &member{SessionSplit: ss, env: envVars(s.spec.Env, env), lastSeen: time.Now()}
	s.sessions = append(s.sessions, mem)
	if err := s.record(ctx, ""); err != nil {
		s.sessions = s.sessions[:len(s.sessions)-1]
		if _, rerr := s.router.RemoveSession(context.WithoutCancel(ctx), ss.Session); rerr != nil {
			s.m.log.Warn("queue split: could not undo a session not recorded", "queue", s.key, "session", ss.Session, "err", rerr)
		}
		return nil, unavailable("%v", err)
	}
	s.m.log.Info("queue split: session joined", "queue", s.key, "session", ss.Session, "user", ss.User, "mode", ss.Mode, "filter", ss.Filter.String())
	return mem.env, nil
}

// envVars names the values of env by the workload's variables.
func envVars(names qs.QueueEnv, env queuesplit.Env) map[string]string {
	out := map[string]string{names.Stream: env.Stream, names.Group: env.Group}
	if names.Subject != "" {
		out[names.Subject] = env.Subject
	}
	return out
}

// startWith opens the broker, starts the router on the original queue and
// points the workload at its own queue. The originals come from the
// workload's record when a previous leader had already repointed it.
// pending are the sessions a previous leader recorded (resume): they stay
// in the record throughout and rejoin the router in their order once it
// runs.
func (s *split) startWith(ctx context.Context, rqc *qs.RemocalQueueConsumer, q qs.Queue, pending []*member) error {
	ref := workloadenv.Ref{Namespace: s.ns, Kind: rqc.Spec.Workload.Kind, Name: rqc.Spec.Workload.Name, Container: rqc.Spec.Workload.Container}
	names := []string{q.Env.Stream, q.Env.Group}
	if q.Env.Subject != "" {
		names = append(names, q.Env.Subject)
	}
	recorded, err := workloadenv.Recorded(ctx, s.m.cfg.Kube, ref)
	if err != nil {
		return err
	}
	values, ok := recorded[s.envKey()]
	if !ok {
		if values, err = workloadenv.Read(ctx, s.m.cfg.Kube, ref, names); err != nil {
			return err
		}
	}
	original := queuesplit.Env{Stream: values[q.Env.Stream], Group: values[q.Env.Group], Subject: values[q.Env.Subject]}
	b, err := openBroker(ctx, s.m.cfg.Kube, s.ns, q, original)
	if err != nil {
		return err
	}
	r, err := queuesplit.New(ctx, b, queuesplit.Options{Logger: s.m.log.With("queue", s.key)})
	if err != nil {
		b.Close()
		return err
	}
	denv, err := r.DeployedEnv(ctx)
	if err != nil {
		b.Close()
		return err
	}
	s.spec, s.ref, s.broker, s.router = q, ref, b, r
	s.sessions = pending
	// Recorded first: a leader that dies after repointing the workload
	// leaves a record the next one resumes from.
	if err := s.record(ctx, ""); err != nil {
		s.close()
		return err
	}
	runCtx, stop := context.WithCancel(s.m.ctx)
	done := make(chan struct{})
	if !s.m.goTracked(func() {
		defer close(done)
		if err := r.Run(runCtx); err != nil {
			s.m.log.Error("queue split: the router stopped", "queue", s.key, "err", err)
		}
	}) {
		stop()
		s.close()
		return errors.New("the operator is stopping")
	}
	s.stop, s.done, s.running = stop, done, true
	if err := workloadenv.Set(ctx, s.m.cfg.Kube, ref, s.envKey(), envVars(q.Env, denv)); err != nil {
		s.m.log.Warn("queue split: could not repoint the workload", "queue", s.key, "err", err)
		if len(pending) == 0 {
			s.teardown(s.m.ctx)
		} else {
			s.close() // recorded sessions wait for the next reconcile
		}
		return err
	}
	s.m.goTracked(func() { s.awaitRollout(runCtx) })
	return s.rejoin(ctx)
}

// rejoin adds the recorded sessions to a router started again. One the
// router refuses (its recorded filter no longer valid) is dropped, and
// its queue drained to the deployed consumer's (a mirror's discarded).
func (s *split) rejoin(ctx context.Context) error {
	kept := s.sessions[:0]
	for _, mem := range s.sessions {
		sp := qs.Split{Consumer: s.consumer, Queue: s.queue, Mode: mem.Mode, Filter: mem.Filter}
		env, err := s.router.AddSession(ctx, mem.Session, sp)
		if err != nil {
			s.m.log.Warn("queue split: a recorded session cannot rejoin", "queue", s.key, "session", mem.Session, "err", err)
			var derr error
			if mem.Mode == qs.ModeMirror {
				derr = s.broker.Discard(ctx, queuesplit.SessionQueue(mem.Session))
			} else {
				_, derr = s.broker.Drain(ctx, queuesplit.SessionQueue(mem.Session), queuesplit.DeployedQueue)
			}
			if derr != nil {
				return derr
			}
			continue
		}
		mem.env = envVars(s.spec.Env, env)
		kept = append(kept, mem)
	}
	dropped := len(kept) != len(s.sessions)
	s.sessions = kept
	if dropped {
		return s.record(ctx, "")
	}
	return nil
}

// envKey names the split in the workload's record of original values.
func (s *split) envKey() string { return s.consumer + "." + s.queue }

// awaitRollout reports in the status when the workload reads its own
// queue, or why it does not.
func (s *split) awaitRollout(ctx context.Context) {
	wctx, cancel := context.WithTimeout(ctx, s.m.cfg.RolloutTimeout)
	defer cancel()
	err := workloadenv.WaitRolledOut(wctx, s.m.cfg.Kube, s.ref)
	if ctx.Err() != nil {
		return
	}
	msg := ""
	if err != nil {
		msg = fmt.Sprintf("the workload has not rolled over to its own queue: %v", err)
		s.m.log.Warn("queue split: rollout", "queue", s.key, "err", err)
	}
	s.op.Lock()
	defer s.op.Unlock()
	if s.running {
		if err := s.record(ctx, msg); err != nil {
			s.m.log.Warn("queue split: status", "queue", s.key, "err", err)
		}
	}
}

// record writes the split's status.
func (s *split) record(ctx context.Context, message string) error {
	st := &qs.QueueSplitStatus{Queue: s.queue, Phase: qs.PhaseSplitting, Message: message}
	if s.restoring {
		st.Phase = qs.PhaseRestoring
	}
	for _, m := range s.sessions {
		st.Sessions = append(st.Sessions, m.SessionSplit)
	}
	s.view.Store(&view{status: *st, router: s.router})
	return s.m.rqc.setQueueStatus(ctx, s.ns, s.consumer, s.queue, st)
}

// remove ends a session's split: its queue's messages go to the deployed
// consumer; the last session's end gives the queue back.
func (s *split) remove(ctx context.Context, session, why string) {
	i := slices.IndexFunc(s.sessions, func(m *member) bool { return m.Session == session })
	if i < 0 {
		return
	}
	moved, err := s.router.RemoveSession(ctx, session)
	if err != nil {
		// Kept: the next reconcile tries again, nothing is lost.
		s.m.log.Warn("queue split: could not end a session's split", "queue", s.key, "session", session, "err", err)
		return
	}
	s.sessions = slices.Delete(s.sessions, i, i+1)
	s.m.log.Info("queue split: session left", "queue", s.key, "session", session, "why", why, "moved", moved)
	if len(s.sessions) == 0 {
		s.teardown(ctx)
		return
	}
	if err := s.record(ctx, ""); err != nil {
		s.m.log.Warn("queue split: status", "queue", s.key, "err", err)
	}
}

// teardown gives the queue back: the router stops and settles what it
// held, the workload reads the original again (rolled out), the temporary
// queues drain into it. Each step can be repeated; a failed one leaves
// the split restoring, and the reconcile tries again.
func (s *split) teardown(ctx context.Context) {
	s.restoring = true
	if err := s.record(ctx, ""); err != nil {
		s.m.log.Warn("queue split: status", "queue", s.key, "err", err)
	}
	s.stopRouter()
	err := s.giveBack(ctx)
	if err != nil {
		s.m.log.Warn("queue split: giving the queue back failed; will retry", "queue", s.key, "err", err)
		if rerr := s.record(ctx, err.Error()); rerr != nil {
			s.m.log.Warn("queue split: status", "queue", s.key, "err", rerr)
		}
		return
	}
	if err := s.m.rqc.setQueueStatus(ctx, s.ns, s.consumer, s.queue, nil); err != nil {
		s.m.log.Warn("queue split: status", "queue", s.key, "err", err)
		return
	}
	s.m.log.Info("queue split: the workload has its queue back", "queue", s.key)
	s.close()
	s.m.forget(s)
}

func (s *split) giveBack(ctx context.Context) error {
	if err := s.router.Settle(ctx, s.m.cfg.SettleTimeout); err != nil {
		return err
	}
	if err := workloadenv.Restore(ctx, s.m.cfg.Kube, s.ref, s.envKey()); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, s.m.cfg.RolloutTimeout)
	defer cancel()
	if err := workloadenv.WaitRolledOut(wctx, s.m.cfg.Kube, s.ref); err != nil {
		return fmt.Errorf("waiting for the workload to read its queue again: %w", err)
	}
	moved, err := s.router.Drain(ctx)
	if err != nil {
		return err
	}
	s.m.log.Info("queue split: temporary queues drained", "queue", s.key, "moved", moved)
	return nil
}

func (s *split) stopRouter() {
	if s.stop != nil {
		s.stop()
		<-s.done
		s.stop, s.done = nil, nil
	}
	s.running = false
}

// close lets go of the broker; the split's state stays where it is
// recorded (status, workload, broker).
func (s *split) close() {
	s.stopRouter()
	if s.broker != nil {
		s.broker.Close()
		s.broker, s.router = nil, nil
	}
	s.restoring = false
	s.sessions = nil
	s.view.Store(nil)
}
