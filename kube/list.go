package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sourcegraph/conc/pool"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
)

// List lists Kubernetes targets once, for the command line: in namespace
// (empty: the context's), or in every namespace with allNamespaces; only
// kinds when given. It needs permission to list what it shows, and says
// which permission is missing.
func List(ctx context.Context, env *Env, namespace string, allNamespaces bool, kinds ...config.TargetKind) ([]daemon.Target, error) {
	ns := namespace
	if ns == "" {
		ns = env.Namespace
	}
	if allNamespaces {
		ns = metav1.NamespaceAll
	}
	want := map[config.TargetKind]bool{}
	for _, k := range kinds {
		w, ok := WorkloadOf(k)
		if !ok {
			return nil, fmt.Errorf("unknown kind %q; use one of %s", k, KindNames())
		}
		want[k] = true
		for _, n := range w.Needs {
			want[n] = true
		}
	}
	// Every list runs to its end, so that a permission error names every
	// resource missing, not whichever failed first.
	type result struct {
		i     int // in Workloads, to report in a stable order
		w     Workload
		merge func(*Objects)
		err   error
	}
	p := pool.NewWithResults[result]().WithContext(ctx)
	for i, w := range Workloads {
		if len(kinds) > 0 && !want[w.Kind] {
			continue
		}
		p.Go(func(ctx context.Context) (result, error) {
			merge, err := w.list(ctx, env.Client, ns, metav1.ListOptions{})
			return result{i, w, merge, err}, nil
		})
	}
	results, _ := p.Wait()
	slices.SortFunc(results, func(a, b result) int { return a.i - b.i })
	var forbidden []string
	for _, r := range results {
		switch {
		case r.err == nil:
		case apierrors.IsForbidden(r.err):
			forbidden = append(forbidden, r.w.Resource)
		default:
			return nil, listError(r.err, r.w.Resource, ns)
		}
	}
	if len(forbidden) > 0 {
		return nil, forbiddenError(forbidden, ns)
	}
	var o Objects
	for _, r := range results {
		r.merge(&o)
	}
	out := BuildTargets(o)
	if len(kinds) > 0 {
		out = slices.DeleteFunc(out, func(t daemon.Target) bool { return !slices.Contains(kinds, config.TargetKind(t.Kind)) })
	}
	if len(out) == 0 && ns != metav1.NamespaceAll {
		// Listing a namespace that does not exist finds nothing rather
		// than failing; say so instead of printing an empty table.
		if _, err := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("namespace %q not found; kubectl get namespaces lists them (remocal ls -A lists targets in all of them)", ns)
		}
	}
	return out, nil
}

// KindNames lists the kinds for messages, comma-separated.
func KindNames() string {
	var names []string
	for _, w := range Workloads {
		names = append(names, string(w.Kind))
	}
	return strings.Join(names, ", ")
}

// listError explains why listing resource failed; ns is empty for all
// namespaces.
func listError(err error, resource, ns string) error {
	where := inNamespace(ns)
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w: %w", forbiddenError([]string{resource}, ns), err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the Kubernetes API refused your credentials while listing %s %s; log in again or check the kubeconfig's user: %w", resource, where, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("list %s %s: %w", resource, where, err)
	}
	return fmt.Errorf("list %s %s: %w; is the cluster reachable (kubectl cluster-info)?", resource, where, err)
}

// forbiddenError names the RBAC permissions to ask for.
func forbiddenError(resources []string, ns string) error {
	hint := "ask an administrator for that permission (verbs list and watch)"
	if ns == metav1.NamespaceAll {
		hint += ", or list one namespace with -n NAMESPACE"
	}
	return fmt.Errorf("your Kubernetes account may not list %s %s; %s", strings.Join(resources, ", "), inNamespace(ns), hint)
}

func inNamespace(ns string) string {
	if ns == metav1.NamespaceAll {
		return "in all namespaces (cluster-wide)"
	}
	return "in namespace " + ns
}

// OperatorTargets lists targets through the operator's API (what a user
// with only the operator's RBAC may see), in the form List returns: of
// namespace ns, or of all with allNamespaces, of the given kinds (all if
// none), sorted by namespace then reference.
func OperatorTargets(ctx context.Context, env *Env, ns string, allNamespaces bool, kinds ...config.TargetKind) ([]daemon.Target, error) {
	c, err := NewOperatorClient(env)
	if err != nil {
		return nil, err
	}
	if ns == "" {
		ns = env.Namespace
	}
	if allNamespaces {
		ns = ""
	}
	list, err := c.ListTargets(ctx, ns)
	if err != nil {
		return nil, err
	}
	out := []daemon.Target{}
	for _, t := range list.Items {
		if len(kinds) > 0 && !slices.Contains(kinds, config.TargetKind(t.Spec.Kind)) {
			continue
		}
		out = append(out, daemon.Target{Ref: t.Spec.Kind + "/" + t.Spec.Name, Kind: t.Spec.Kind, Name: t.Spec.Name,
			Namespace: t.Namespace, Provider: Provider, Ready: t.Status.Ready, Status: t.Status.Status, Containers: t.Spec.Containers})
	}
	slices.SortFunc(out, func(a, b daemon.Target) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Ref, b.Ref)
	})
	return out, nil
}
