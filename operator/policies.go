package operator

import (
	"context"
	"fmt"

	"k8s.io/client-go/dynamic"

	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/operator/internal/policies"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/policy"
)

// policyTargets gives the broker and the target catalogue what policies
// select targets by: their labels and default container.
type policyTargets struct {
	dyn     dynamic.Interface
	targets *kubeTargets
	watcher *policies.Watcher
}

// info implements broker.TargetInfo.
func (p *policyTargets) info(ctx context.Context, ns, target string) (policy.Target, error) {
	t, err := p.targets.Get(ctx, ns, target)
	if err != nil {
		return policy.Target{}, err
	}
	return p.of(ctx, t)
}

func (p *policyTargets) of(ctx context.Context, t *operator.Target) (policy.Target, error) {
	out := policy.Target{Namespace: t.Namespace, Kind: t.Spec.Kind, Name: t.Spec.Name}
	if len(t.Spec.Containers) > 0 {
		out.Container = t.Spec.Containers[0]
	}
	w, ok := kube.WorkloadOf(config.TargetKind(t.Spec.Kind))
	if !ok {
		return out, fmt.Errorf("unknown target kind %q", t.Spec.Kind)
	}
	labels, err := policies.TargetLabels(ctx, p.dyn, w.Resource, t.Namespace, t.Spec.Name)
	if err != nil {
		return out, fmt.Errorf("read the labels of %s/%s in namespace %s for the policies: %w", t.Spec.Kind, t.Spec.Name, t.Namespace, err)
	}
	out.Labels = labels
	return out, nil
}

// applied fills a target's status with the policies that apply to it.
func (p *policyTargets) applied(ctx context.Context, t *operator.Target) error {
	pt, err := p.of(ctx, t)
	if err != nil {
		return err
	}
	set, err := p.watcher.For(pt)
	if err != nil {
		d, _ := err.(*policy.Denial)
		if d == nil {
			return err
		}
		t.Status.Policies = []operator.AppliedPolicy{{Kind: d.Policy.Kind, Namespace: d.Policy.Namespace, Name: d.Policy.Name,
			Rules: []string{"refuses every session: " + d.Message}}}
		return nil
	}
	for _, a := range set {
		t.Status.Policies = append(t.Status.Policies, operator.AppliedPolicy{Kind: a.Ref.Kind, Namespace: a.Ref.Namespace,
			Name: a.Ref.Name, Rules: a.Spec.Describe("")})
	}
	return nil
}
