package policy

import (
	"slices"

	"k8s.io/apimachinery/pkg/runtime"
)

// Deep copies, written by hand as protocol/operator's are: every slice
// and pointer is copied, so a copy shares no memory with its original
// (informer caches rely on that).

// DeepCopyInto copies s into out.
func (s *Spec) DeepCopyInto(out *Spec) {
	*out = *s
	out.Targets.Names = slices.Clone(s.Targets.Names)
	out.Targets.Namespaces = slices.Clone(s.Targets.Namespaces)
	out.Targets.Selector = s.Targets.Selector.DeepCopy()
	if s.Incoming != nil {
		in := *s.Incoming
		if in.RequireHeader != nil {
			h := *in.RequireHeader
			in.RequireHeader = &h
		}
		out.Incoming = &in
	}
	if s.Outgoing != nil {
		o := Outgoing{Allow: copyDests(s.Outgoing.Allow), Block: copyDests(s.Outgoing.Block)}
		out.Outgoing = &o
	}
	if s.Env != nil {
		out.Env = &Env{Exclude: slices.Clone(s.Env.Exclude)}
	}
	if s.Files != nil {
		out.Files = &Files{Local: slices.Clone(s.Files.Local), ReadOnly: slices.Clone(s.Files.ReadOnly), NotFound: slices.Clone(s.Files.NotFound)}
	}
	if s.Queues != nil {
		q := *s.Queues
		out.Queues = &q
	}
}

func copyDests(ds []Destination) []Destination {
	if ds == nil {
		return nil
	}
	out := make([]Destination, len(ds))
	for i, d := range ds {
		out[i] = d
		out[i].Ports = slices.Clone(d.Ports)
	}
	return out
}

// DeepCopyInto copies p into out.
func (p *RemocalPolicy) DeepCopyInto(out *RemocalPolicy) {
	*out = *p
	p.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	p.Spec.DeepCopyInto(&out.Spec)
}

// DeepCopy returns a copy of p.
func (p *RemocalPolicy) DeepCopy() *RemocalPolicy {
	if p == nil {
		return nil
	}
	out := new(RemocalPolicy)
	p.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (p *RemocalPolicy) DeepCopyObject() runtime.Object {
	if c := p.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopyInto copies l into out.
func (l *RemocalPolicyList) DeepCopyInto(out *RemocalPolicyList) {
	*out = *l
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]RemocalPolicy, len(l.Items))
		for i := range l.Items {
			l.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

// DeepCopy returns a copy of l.
func (l *RemocalPolicyList) DeepCopy() *RemocalPolicyList {
	if l == nil {
		return nil
	}
	out := new(RemocalPolicyList)
	l.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *RemocalPolicyList) DeepCopyObject() runtime.Object {
	if c := l.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopyInto copies p into out.
func (p *RemocalClusterPolicy) DeepCopyInto(out *RemocalClusterPolicy) {
	*out = *p
	p.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	p.Spec.DeepCopyInto(&out.Spec)
}

// DeepCopy returns a copy of p.
func (p *RemocalClusterPolicy) DeepCopy() *RemocalClusterPolicy {
	if p == nil {
		return nil
	}
	out := new(RemocalClusterPolicy)
	p.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (p *RemocalClusterPolicy) DeepCopyObject() runtime.Object {
	if c := p.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopyInto copies l into out.
func (l *RemocalClusterPolicyList) DeepCopyInto(out *RemocalClusterPolicyList) {
	*out = *l
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]RemocalClusterPolicy, len(l.Items))
		for i := range l.Items {
			l.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

// DeepCopy returns a copy of l.
func (l *RemocalClusterPolicyList) DeepCopy() *RemocalClusterPolicyList {
	if l == nil {
		return nil
	}
	out := new(RemocalClusterPolicyList)
	l.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *RemocalClusterPolicyList) DeepCopyObject() runtime.Object {
	if c := l.DeepCopy(); c != nil {
		return c
	}
	return nil
}
