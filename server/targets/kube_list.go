package targets

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sourcegraph/conc/pool"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/remocal/remocal/interpose/connect/kube"
	"github.com/remocal/remocal/protocol/daemon"
)

// kubeResource is one kind of object targets are built from: how to list
// it, and what to call it in a permission error.
type kubeResource struct {
	kind string
	// resource is the name RBAC rules use ("deployments.apps").
	resource string
	list     func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (listed, error)
}

// listed holds one resource's objects until they are merged into Objects.
type listed func(o *Objects)

var kubeResources = []kubeResource{
	{KindPod, "pods", func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (listed, error) {
		l, err := cs.CoreV1().Pods(ns).List(ctx, lo)
		if err != nil {
			return nil, err
		}
		return func(o *Objects) { o.Pods = ptrs(l.Items) }, nil
	}},
	{KindDeployment, "deployments.apps", func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (listed, error) {
		l, err := cs.AppsV1().Deployments(ns).List(ctx, lo)
		if err != nil {
			return nil, err
		}
		return func(o *Objects) { o.Deployments = ptrs(l.Items) }, nil
	}},
	{KindStatefulSet, "statefulsets.apps", func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (listed, error) {
		l, err := cs.AppsV1().StatefulSets(ns).List(ctx, lo)
		if err != nil {
			return nil, err
		}
		return func(o *Objects) { o.StatefulSets = ptrs(l.Items) }, nil
	}},
	{KindReplicaSet, "replicasets.apps", func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (listed, error) {
		l, err := cs.AppsV1().ReplicaSets(ns).List(ctx, lo)
		if err != nil {
			return nil, err
		}
		return func(o *Objects) { o.ReplicaSets = ptrs(l.Items) }, nil
	}},
	{KindJob, "jobs.batch", func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (listed, error) {
		l, err := cs.BatchV1().Jobs(ns).List(ctx, lo)
		if err != nil {
			return nil, err
		}
		return func(o *Objects) { o.Jobs = ptrs(l.Items) }, nil
	}},
	{KindCronJob, "cronjobs.batch", func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (listed, error) {
		l, err := cs.BatchV1().CronJobs(ns).List(ctx, lo)
		if err != nil {
			return nil, err
		}
		return func(o *Objects) { o.CronJobs = ptrs(l.Items) }, nil
	}},
	{KindService, "services", func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (listed, error) {
		l, err := cs.CoreV1().Services(ns).List(ctx, lo)
		if err != nil {
			return nil, err
		}
		return func(o *Objects) { o.Services = ptrs(l.Items) }, nil
	}},
}

func ptrs[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

// needs says which kinds of objects a kind's targets are built from: pods
// decide whether jobs and services are ready, and a cronjob's jobs whether
// it is.
var needs = map[string][]string{
	KindJob:     {KindPod},
	KindCronJob: {KindJob, KindPod},
	KindService: {KindPod},
}

// List lists Kubernetes targets once, for the command line: in namespace
// (empty: the context's), or in every namespace with allNamespaces; only
// kinds when given (names as in KubeKinds). It needs permission to list
// what it shows, and says which permission is missing.
func List(ctx context.Context, env *kube.Env, namespace string, allNamespaces bool, kinds ...string) ([]daemon.Target, error) {
	for _, k := range kinds {
		if !slices.Contains(KubeKinds, k) {
			return nil, fmt.Errorf("unknown kind %q; use one of %s", k, strings.Join(KubeKinds, ", "))
		}
	}
	ns := namespace
	if ns == "" {
		ns = env.Namespace
	}
	if allNamespaces {
		ns = metav1.NamespaceAll
	}
	want := map[string]bool{}
	for _, k := range kinds {
		want[k] = true
		for _, n := range needs[k] {
			want[n] = true
		}
	}
	// Every list runs to its end, so that a permission error names every
	// resource missing, not whichever failed first.
	type result struct {
		i   int // in kubeResources, to report in a stable order
		l   listed
		err error
	}
	p := pool.NewWithResults[result]().WithContext(ctx)
	for i, r := range kubeResources {
		if len(kinds) > 0 && !want[r.kind] {
			continue
		}
		p.Go(func(ctx context.Context) (result, error) {
			l, err := r.list(ctx, env.Client, ns, metav1.ListOptions{})
			return result{i, l, err}, nil
		})
	}
	results, _ := p.Wait()
	slices.SortFunc(results, func(a, b result) int { return a.i - b.i })
	var forbidden []string
	for _, r := range results {
		i := r.i
		switch {
		case r.err == nil:
		case apierrors.IsForbidden(r.err):
			forbidden = append(forbidden, kubeResources[i].resource)
		default:
			return nil, listError(r.err, kubeResources[i].resource, ns)
		}
	}
	if len(forbidden) > 0 {
		return nil, forbiddenError(forbidden, ns)
	}
	var o Objects
	for _, r := range results {
		r.l(&o)
	}
	out := BuildKube(o)
	if len(kinds) > 0 {
		out = slices.DeleteFunc(out, func(t daemon.Target) bool { return !slices.Contains(kinds, t.Kind) })
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
