package operator

import (
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/protocol/wire"
)

// The copies below are written by hand instead of generated: the types are
// few and small, and a generator would be one more tool in the build. Every
// slice, map and pointer is copied, so a copy shares no memory with its
// original (the API server's caches and watchers rely on that).

// DeepCopyInto copies t into out.
func (t *Target) DeepCopyInto(out *Target) {
	*out = *t
	t.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec.Containers = slices.Clone(t.Spec.Containers)
	out.Status.Pods = slices.Clone(t.Status.Pods)
	if t.Status.Policies != nil {
		out.Status.Policies = make([]AppliedPolicy, len(t.Status.Policies))
		for i, p := range t.Status.Policies {
			out.Status.Policies[i] = p
			out.Status.Policies[i].Rules = slices.Clone(p.Rules)
		}
	}
}

// DeepCopy returns a copy of t.
func (t *Target) DeepCopy() *Target {
	if t == nil {
		return nil
	}
	out := new(Target)
	t.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (t *Target) DeepCopyObject() runtime.Object { return nilOr(t.DeepCopy()) }

// DeepCopyInto copies l into out.
func (l *TargetList) DeepCopyInto(out *TargetList) {
	*out = *l
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	out.Items = copyItems(l.Items, (*Target).DeepCopyInto)
}

// DeepCopy returns a copy of l.
func (l *TargetList) DeepCopy() *TargetList {
	if l == nil {
		return nil
	}
	out := new(TargetList)
	l.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *TargetList) DeepCopyObject() runtime.Object { return nilOr(l.DeepCopy()) }

// DeepCopyInto copies s into out.
func (s *Session) DeepCopyInto(out *Session) {
	*out = *s
	s.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec.User.Groups = slices.Clone(s.Spec.User.Groups)
	s.Status.DeepCopyInto(&out.Status)
}

// DeepCopy returns a copy of s.
func (s *Session) DeepCopy() *Session {
	if s == nil {
		return nil
	}
	out := new(Session)
	s.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (s *Session) DeepCopyObject() runtime.Object { return nilOr(s.DeepCopy()) }

// DeepCopyInto copies s into out.
func (s *SessionStatus) DeepCopyInto(out *SessionStatus) {
	*out = *s
	out.Pods = slices.Clone(s.Pods)
	s.StartTime.DeepCopyInto(&out.StartTime)
	s.LastHeartbeat.DeepCopyInto(&out.LastHeartbeat)
	out.ExpiresAt = s.ExpiresAt.DeepCopy()
	out.Ports = copyItems(s.Ports, (*PortStatus).DeepCopyInto)
	out.QueueSplits = copyItems(s.QueueSplits, func(a, o *QueueSplitStatus) {
		*o = *a
		o.Filter = copyFilter(a.Filter)
		a.Since.DeepCopyInto(&o.Since)
	})
}

func copyFilter(f *queuesplit.Filter) *queuesplit.Filter {
	if f == nil {
		return nil
	}
	return &queuesplit.Filter{Headers: maps.Clone(f.Headers), Body: maps.Clone(f.Body)}
}

// DeepCopyInto copies p into out.
func (p *PortStatus) DeepCopyInto(out *PortStatus) {
	*out = *p
	out.Since = p.Since.DeepCopy()
	if p.Filter != nil {
		out.Filter = &wire.HTTPFilter{
			Headers: maps.Clone(p.Filter.Headers),
			Path:    p.Filter.Path,
			Methods: slices.Clone(p.Filter.Methods),
		}
	}
}

// DeepCopyInto copies l into out.
func (l *SessionList) DeepCopyInto(out *SessionList) {
	*out = *l
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	out.Items = copyItems(l.Items, (*Session).DeepCopyInto)
}

// DeepCopy returns a copy of l.
func (l *SessionList) DeepCopy() *SessionList {
	if l == nil {
		return nil
	}
	out := new(SessionList)
	l.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *SessionList) DeepCopyObject() runtime.Object { return nilOr(l.DeepCopy()) }

// DeepCopyInto copies s into out.
func (s *OperatorStatus) DeepCopyInto(out *OperatorStatus) {
	*out = *s
	s.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	s.Status.DeepCopyInto(&out.Status)
}

// DeepCopy returns a copy of s.
func (s *OperatorStatus) DeepCopy() *OperatorStatus {
	if s == nil {
		return nil
	}
	out := new(OperatorStatus)
	s.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (s *OperatorStatus) DeepCopyObject() runtime.Object { return nilOr(s.DeepCopy()) }

// DeepCopyInto copies s into out.
func (s *OperatorState) DeepCopyInto(out *OperatorState) {
	*out = *s
	out.Problems = slices.Clone(s.Problems)
	out.Agents = copyItems(s.Agents, func(a, o *AgentStatus) {
		*o = *a
		o.IdleSince = a.IdleSince.DeepCopy()
	})
	out.Targets = copyItems(s.Targets, func(a, o *TargetSessions) {
		*o = *a
		o.Users = slices.Clone(a.Users)
	})
	out.RecentDenials = slices.Clone(s.RecentDenials)
	out.Usage = slices.Clone(s.Usage)
	out.QueueSplits = copyItems(s.QueueSplits, func(a, o *QueueState) {
		*o = *a
		o.Sessions = copyItems(a.Sessions, func(a, o *QueueSessionState) {
			*o = *a
			o.Filter = copyFilter(a.Filter)
		})
	})
}

// DeepCopyInto copies l into out.
func (l *OperatorStatusList) DeepCopyInto(out *OperatorStatusList) {
	*out = *l
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	out.Items = copyItems(l.Items, (*OperatorStatus).DeepCopyInto)
}

// DeepCopy returns a copy of l.
func (l *OperatorStatusList) DeepCopy() *OperatorStatusList {
	if l == nil {
		return nil
	}
	out := new(OperatorStatusList)
	l.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *OperatorStatusList) DeepCopyObject() runtime.Object { return nilOr(l.DeepCopy()) }

// copyItems deep-copies a slice element by element; nil stays nil.
func copyItems[T any](in []T, into func(in, out *T)) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i := range in {
		into(&in[i], &out[i])
	}
	return out
}

// nilOr keeps a nil pointer a nil interface: a typed nil inside a
// runtime.Object would pass "!= nil" checks.
func nilOr[T any, P interface {
	*T
	runtime.Object
}](p P) runtime.Object {
	if p == nil {
		return nil
	}
	return p
}
