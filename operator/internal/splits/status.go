package splits

import (
	"cmp"
	"slices"

	"github.com/remocal/remocal/protocol/operator"
)

// Status lists the queues split here, with the routers' counts, for the
// operator's status (remocal operator status).
func (m *Manager) Status() []operator.QueueState {
	var out []operator.QueueState
	for _, s := range m.all() {
		v := s.view.Load()
		if v == nil {
			continue
		}
		q := operator.QueueState{Namespace: s.ns, Consumer: s.consumer, Queue: s.queue, Phase: v.status.Phase, Message: v.status.Message}
		var counts map[string]uint64
		if v.router != nil {
			counts = v.router.SessionStats()
			q.Routed, q.Deployed, q.Oversized = v.router.Routed(), counts[""], v.router.Oversized()
		}
		for _, ss := range v.status.Sessions {
			q.Sessions = append(q.Sessions, operator.QueueSessionState{Session: ss.Session, User: ss.User, Mode: ss.Mode,
				Filter: ss.Filter, Delivered: counts[ss.Session]})
		}
		out = append(out, q)
	}
	slices.SortFunc(out, func(a, b operator.QueueState) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Consumer, b.Consumer), cmp.Compare(a.Queue, b.Queue))
	})
	return out
}

// SessionSplits lists the queues session splits, for its Session object.
func (m *Manager) SessionSplits(ns, session string) []operator.QueueSplitStatus {
	var out []operator.QueueSplitStatus
	for _, s := range m.all() {
		v := s.view.Load()
		if v == nil || s.ns != ns {
			continue
		}
		for _, ss := range v.status.Sessions {
			if ss.Session != session {
				continue
			}
			st := operator.QueueSplitStatus{Consumer: s.consumer, Queue: s.queue, Mode: ss.Mode, Filter: ss.Filter, Since: ss.Since}
			if v.router != nil {
				st.Delivered = v.router.SessionStats()[session]
			}
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b operator.QueueSplitStatus) int {
		return cmp.Or(cmp.Compare(a.Consumer, b.Consumer), cmp.Compare(a.Queue, b.Queue))
	})
	return out
}

func (m *Manager) all() []*split {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*split, 0, len(m.splits))
	for _, s := range m.splits {
		out = append(out, s)
	}
	return out
}
