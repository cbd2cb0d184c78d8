package queuesplit

import (
	"maps"

	"k8s.io/apimachinery/pkg/runtime"
)

// Deep copies, written by hand as protocol/policy's are: a copy shares no
// memory with its original (informer caches rely on that).

// DeepCopyInto copies s into out.
func (s *ConsumerSpec) DeepCopyInto(out *ConsumerSpec) {
	*out = *s
	if s.Queues != nil {
		out.Queues = make([]Queue, len(s.Queues))
		for i, q := range s.Queues {
			out.Queues[i] = q
			if q.Broker.Credentials != nil {
				c := *q.Broker.Credentials
				out.Queues[i].Broker.Credentials = &c
			}
		}
	}
}

// DeepCopyInto copies c into out.
func (c *RemocalQueueConsumer) DeepCopyInto(out *RemocalQueueConsumer) {
	*out = *c
	c.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	c.Spec.DeepCopyInto(&out.Spec)
	c.Status.DeepCopyInto(&out.Status)
}

// DeepCopyInto copies s into out.
func (s *ConsumerStatus) DeepCopyInto(out *ConsumerStatus) {
	*out = *s
	if s.Splits != nil {
		out.Splits = make([]QueueSplitStatus, len(s.Splits))
		for i, q := range s.Splits {
			out.Splits[i] = q
			if q.Sessions != nil {
				out.Splits[i].Sessions = make([]SessionSplit, len(q.Sessions))
				for j, ss := range q.Sessions {
					out.Splits[i].Sessions[j] = ss
					if ss.Filter != nil {
						out.Splits[i].Sessions[j].Filter = &Filter{Headers: maps.Clone(ss.Filter.Headers), Body: maps.Clone(ss.Filter.Body)}
					}
				}
			}
		}
	}
}

// DeepCopy returns a copy of c.
func (c *RemocalQueueConsumer) DeepCopy() *RemocalQueueConsumer {
	if c == nil {
		return nil
	}
	out := new(RemocalQueueConsumer)
	c.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (c *RemocalQueueConsumer) DeepCopyObject() runtime.Object { return c.DeepCopy() }

// DeepCopyInto copies l into out.
func (l *RemocalQueueConsumerList) DeepCopyInto(out *RemocalQueueConsumerList) {
	*out = *l
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]RemocalQueueConsumer, len(l.Items))
		for i := range l.Items {
			l.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

// DeepCopy returns a copy of l.
func (l *RemocalQueueConsumerList) DeepCopy() *RemocalQueueConsumerList {
	if l == nil {
		return nil
	}
	out := new(RemocalQueueConsumerList)
	l.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *RemocalQueueConsumerList) DeepCopyObject() runtime.Object { return l.DeepCopy() }

// Clone returns a deep copy of s.
func (s Split) Clone() Split {
	if s.Filter != nil {
		s.Filter = &Filter{Headers: maps.Clone(s.Filter.Headers), Body: maps.Clone(s.Filter.Body)}
	}
	return s
}
