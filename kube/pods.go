package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remocal/remocal/protocol/config"
)

// ReadyPods returns the pods of the target kind/name in ns that a session
// can start beside (running, not being deleted, application containers
// ready), oldest first. The operator reaches every one of them, where the
// direct path picks one.
func ReadyPods(ctx context.Context, env *Env, ns string, kind config.TargetKind, name string) ([]corev1.Pod, error) {
	var pods []corev1.Pod
	switch w, ok := WorkloadOf(kind); {
	case kind == config.TargetPod:
		p, err := podsOf(ctx, env.Client, ns, name)
		if err != nil {
			return nil, err
		}
		pods = p
	case ok && w.pods != nil:
		sel, _, err := w.pods(ctx, env.Client, ns, name)
		if err != nil {
			return nil, err
		}
		list, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return nil, apiError(err, "list", "pods", ns, "")
		}
		pods = list.Items
	default:
		return nil, fmt.Errorf("%q is not a Kubernetes target kind; use one of %s", kind, KindNames())
	}
	pods = slices.DeleteFunc(pods, func(p corev1.Pod) bool {
		_, ready := podStatus(&p)
		return !ready || isAgent(&p.ObjectMeta)
	})
	slices.SortFunc(pods, func(a, b corev1.Pod) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return pods, nil
}
