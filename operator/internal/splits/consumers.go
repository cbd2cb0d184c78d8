package splits

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"

	qs "github.com/remocal/remocal/protocol/queuesplit"
)

var consumerResource = schema.GroupVersionResource{Group: qs.Group, Version: qs.Version, Resource: qs.Resource}

// consumers reads RemocalQueueConsumers and writes their status. The
// status is the record a new leader resumes from, so it is written with
// the object's resourceVersion (a lost update would lose a session).
type consumers struct{ dyn dynamic.Interface }

func (c consumers) get(ctx context.Context, ns, name string) (*qs.RemocalQueueConsumer, error) {
	u, err := c.dyn.Resource(consumerResource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return fromUnstructured(u)
}

func (c consumers) list(ctx context.Context) ([]*qs.RemocalQueueConsumer, error) {
	l, err := c.dyn.Resource(consumerResource).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]*qs.RemocalQueueConsumer, 0, len(l.Items))
	for i := range l.Items {
		rqc, err := fromUnstructured(&l.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, rqc)
	}
	return out, nil
}

// setQueueStatus replaces (or, with st nil, removes) the status of one
// queue of the consumer, retrying on conflicting writes. A consumer that
// no longer exists has no status to keep: that is not an error.
func (c consumers) setQueueStatus(ctx context.Context, ns, name, queue string, st *qs.QueueSplitStatus) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rqc, err := c.get(ctx, ns, name)
		if err != nil {
			return err
		}
		var splits []qs.QueueSplitStatus
		for _, s := range rqc.Status.Splits {
			if s.Queue != queue {
				splits = append(splits, s)
			}
		}
		if st != nil {
			splits = append(splits, *st)
		}
		rqc.Status.Splits = splits
		u, err := toUnstructured(rqc)
		if err != nil {
			return err
		}
		_, err = c.dyn.Resource(consumerResource).Namespace(ns).UpdateStatus(ctx, u, metav1.UpdateOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recording the split of %s/%s queue %s in its status: %w", ns, name, queue, err)
	}
	return nil
}

func fromUnstructured(u *unstructured.Unstructured) (*qs.RemocalQueueConsumer, error) {
	var rqc qs.RemocalQueueConsumer
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &rqc); err != nil {
		return nil, fmt.Errorf("RemocalQueueConsumer %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return &rqc, nil
}

func toUnstructured(rqc *qs.RemocalQueueConsumer) (*unstructured.Unstructured, error) {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(rqc)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: obj}
	u.SetAPIVersion(qs.SchemeGroupVersion.String())
	u.SetKind(qs.Kind)
	return u, nil
}
