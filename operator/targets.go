package operator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sourcegraph/conc/pool"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/operator"
)

// kubeTargets is the target catalogue read from the cluster with the
// operator's own credentials, listed when asked (what `remocal ls` does).
type kubeTargets struct {
	env *kube.Env
	// policies, if set, fills the policies of a target read alone.
	policies *policyTargets
}

var _ backend.Targets = (*kubeTargets)(nil)

// podLookups bounds the concurrent pod lookups of one list.
const podLookups = 8

func (k *kubeTargets) List(ctx context.Context, namespace string) ([]operator.Target, error) {
	listed, err := kube.List(ctx, k.env, namespace, namespace == metav1.NamespaceAll)
	if err != nil {
		return nil, fmt.Errorf("the operator lists targets with its service account: %w", err)
	}
	return k.withPods(ctx, listed)
}

func (k *kubeTargets) Get(ctx context.Context, namespace, name string) (*operator.Target, error) {
	kind, workload, ok := strings.Cut(name, ".")
	if _, known := kube.WorkloadOf(config.TargetKind(kind)); !ok || !known || workload == "" {
		return nil, fmt.Errorf("%q is not a target name: targets are named kind.name, e.g. deployment.api (kinds: %s): %w",
			name, kube.KindNames(), backend.ErrNotFound)
	}
	env := *k.env
	env.Namespace = namespace
	listed, err := kube.List(ctx, &env, namespace, false, config.TargetKind(kind))
	if err != nil {
		return nil, fmt.Errorf("the operator lists targets with its service account: %w", err)
	}
	for _, t := range listed {
		if t.Kind == kind && t.Name == workload {
			out, err := k.withPods(ctx, []daemon.Target{t})
			if err != nil {
				return nil, err
			}
			if k.policies != nil {
				if err := k.policies.applied(ctx, &out[0]); err != nil {
					return nil, err
				}
			}
			return &out[0], nil
		}
	}
	return nil, fmt.Errorf("no %s named %s in namespace %s: %w", kind, workload, namespace, backend.ErrNotFound)
}

// withPods maps targets to the API's form with their ready pods.
func (k *kubeTargets) withPods(ctx context.Context, listed []daemon.Target) ([]operator.Target, error) {
	out := make([]operator.Target, len(listed))
	p := pool.New().WithErrors().WithContext(ctx).WithMaxGoroutines(podLookups)
	for i, t := range listed {
		out[i] = apiTarget(t)
		switch {
		case !t.Ready:
			continue // no ready pod to look for
		case t.Kind == string(config.TargetPod):
			out[i].Status.Pods = []string{t.Name} // a ready pod is its own
			continue
		}
		p.Go(func(ctx context.Context) error {
			pods, err := kube.ReadyPods(ctx, k.env, t.Namespace, config.TargetKind(t.Kind), t.Name)
			if errors.Is(err, connect.ErrTargetNotFound) {
				return nil // gone since it was listed
			}
			if err != nil {
				return fmt.Errorf("pods of %s/%s in namespace %s: %w", t.Kind, t.Name, t.Namespace, err)
			}
			for _, pod := range pods {
				out[i].Status.Pods = append(out[i].Status.Pods, pod.Name)
			}
			return nil
		})
	}
	if err := p.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// apiTarget is a listed target in the API's form.
func apiTarget(t daemon.Target) operator.Target {
	return operator.Target{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: operator.TargetName(t.Kind, t.Name)},
		Spec:       operator.TargetSpec{Kind: t.Kind, Name: t.Name, Containers: t.Containers},
		Status:     operator.TargetStatus{Ready: t.Ready, Status: t.Status},
	}
}
