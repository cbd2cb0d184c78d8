package splits

import (
	"context"
	"slices"
	"time"

	qs "github.com/remocal/remocal/protocol/queuesplit"
)

// Run reconciles until ctx ends, every Resync: splits recorded in the
// consumers' status and not running here are resumed (a new leader, a
// restarted operator); sessions the session broker has not known for
// Grace are removed; splits left restoring are given back again.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Resync)
	defer t.Stop()
	for {
		if m.cfg.Leading() {
			if err := m.reconcile(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("queue split: reconcile", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Manager) reconcile(ctx context.Context) error {
	all, err := m.rqc.list(ctx)
	if err != nil {
		return err
	}
	for _, rqc := range all {
		for _, st := range rqc.Status.Splits {
			m.resume(ctx, rqc, st)
		}
	}
	now := time.Now()
	for _, s := range m.all() {
		s.op.Lock()
		switch {
		case s.restoring:
			s.teardown(m.ctx)
		case s.running:
			s.expire(now)
		}
		s.op.Unlock()
	}
	return nil
}

// expire removes the sessions the broker has not known for Grace.
func (s *split) expire(now time.Time) {
	var gone []string
	for _, mem := range s.sessions {
		if s.m.alive(s.ns, mem.Session) {
			mem.lastSeen = now
		} else if now.Sub(mem.lastSeen) > s.m.cfg.Grace {
			gone = append(gone, mem.Session)
		}
	}
	for _, id := range gone {
		s.remove(s.m.ctx, id, "the session is gone")
	}
}

// resume takes over a split a previous leader recorded: the router
// starts again on the broker's state, the recorded sessions rejoin in
// their order, and a split that was being given back is given back.
func (m *Manager) resume(ctx context.Context, rqc *qs.RemocalQueueConsumer, st qs.QueueSplitStatus) {
	s := m.entry(rqc.Namespace, rqc.Name, st.Queue)
	s.op.Lock()
	defer s.op.Unlock()
	if s.running || s.restoring {
		return
	}
	// The list may predate a step that finished meanwhile (a split given
	// back while the list was read): act only on the status as it is now.
	rqc, err := m.rqc.get(ctx, rqc.Namespace, rqc.Name)
	if err != nil {
		m.log.Warn("queue split: cannot resume", "queue", s.key, "err", err)
		return
	}
	i := slices.IndexFunc(rqc.Status.Splits, func(q qs.QueueSplitStatus) bool { return q.Queue == st.Queue })
	if i < 0 {
		m.forget(s)
		return
	}
	st = rqc.Status.Splits[i]
	q, err := pickQueue(rqc, st.Queue)
	if err != nil {
		m.log.Warn("queue split: cannot resume", "queue", s.key, "err", err)
		m.forget(s)
		return
	}
	m.log.Info("queue split: resuming", "queue", s.key, "phase", st.Phase, "sessions", len(st.Sessions))
	var recorded []*member
	for _, ss := range st.Sessions {
		recorded = append(recorded, &member{SessionSplit: ss, lastSeen: time.Now()})
	}
	if err := s.startWith(ctx, rqc, q, recorded); err != nil {
		m.log.Warn("queue split: resuming failed; will retry", "queue", s.key, "err", err)
		return
	}
	if st.Phase == qs.PhaseRestoring || len(s.sessions) == 0 {
		s.teardown(m.ctx)
	}
}
