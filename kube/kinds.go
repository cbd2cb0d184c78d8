package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
)

// Workload is what remocal knows about one kind of object that targets are
// made of. Workloads is the one place a kind is described: resolving a
// target, `remocal ls`, the daemon's informers and the permission probe all
// read it, so a new kind is one entry here.
type Workload struct {
	Kind config.TargetKind
	// Resource is the name RBAC rules use ("deployments.apps").
	Resource string
	// Needs are the kinds whose objects decide this kind's readiness: a
	// job is judged by its pods, a cronjob by its latest job's pods.
	Needs []config.TargetKind

	// list lists the kind in a namespace and returns what to merge into
	// Objects.
	list func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (func(*Objects), error)
	// watch registers the kind with an informer factory and returns a
	// reader of one namespace's objects from its lister.
	watch func(f informers.SharedInformerFactory) (cache.SharedIndexInformer, func(ns string, o *Objects))
	// pods returns the selector of a named object's pods, and how to name
	// them in messages; nil for pods, which are their own.
	pods func(ctx context.Context, cs kubernetes.Interface, ns, name string) (sel labels.Selector, what string, err error)
	// build makes the kind's targets, with their readiness, out of the
	// listed objects.
	build func(o *Objects, ix *index) []daemon.Target
}

// Workloads lists the kinds in config.WorkloadKinds' order.
var Workloads = []Workload{
	{Kind: config.TargetPod, Resource: "pods", list: listPods, watch: watchPods, build: buildPods},
	{Kind: config.TargetDeployment, Resource: "deployments.apps", list: listDeployments, watch: watchDeployments,
		pods: deploymentPods, build: buildDeployments},
	{Kind: config.TargetStatefulSet, Resource: "statefulsets.apps", list: listStatefulSets, watch: watchStatefulSets,
		pods: statefulSetPods, build: buildStatefulSets},
	{Kind: config.TargetReplicaSet, Resource: "replicasets.apps", list: listReplicaSets, watch: watchReplicaSets,
		pods: replicaSetPods, build: buildReplicaSets},
	{Kind: config.TargetJob, Resource: "jobs.batch", Needs: []config.TargetKind{config.TargetPod},
		list: listJobs, watch: watchJobs, pods: jobPods, build: buildJobs},
	{Kind: config.TargetCronJob, Resource: "cronjobs.batch", Needs: []config.TargetKind{config.TargetJob, config.TargetPod},
		list: listCronJobs, watch: watchCronJobs, pods: cronJobPods, build: buildCronJobs},
	{Kind: config.TargetService, Resource: "services", Needs: []config.TargetKind{config.TargetPod},
		list: listServices, watch: watchServices, pods: servicePods, build: buildServices},
}

// WorkloadOf returns the description of a kind.
func WorkloadOf(kind config.TargetKind) (Workload, bool) {
	for _, w := range Workloads {
		if w.Kind == kind {
			return w, true
		}
	}
	return Workload{}, false
}

// Watch registers the kind's informer with f and returns it with a reader
// of one namespace's objects from its lister (the daemon's provider).
func (w Workload) Watch(f informers.SharedInformerFactory) (cache.SharedIndexInformer, func(ns string, o *Objects)) {
	return w.watch(f)
}

// MayList reports whether the account may list the kind in ns (all
// namespaces when empty), by listing one object as an informer would; err
// says why the cluster could not tell.
func (w Workload) MayList(ctx context.Context, cs kubernetes.Interface, ns string) (bool, error) {
	_, err := w.list(ctx, cs, ns, metav1.ListOptions{Limit: 1})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsForbidden(err):
		return false, nil
	}
	return false, listError(err, w.Resource, ns)
}

// ptrs turns a list's items into the pointers listers hand out.
func ptrs[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

func listPods(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (func(*Objects), error) {
	l, err := cs.CoreV1().Pods(ns).List(ctx, lo)
	if err != nil {
		return nil, err
	}
	return func(o *Objects) { o.Pods = ptrs(l.Items) }, nil
}

func listDeployments(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (func(*Objects), error) {
	l, err := cs.AppsV1().Deployments(ns).List(ctx, lo)
	if err != nil {
		return nil, err
	}
	return func(o *Objects) { o.Deployments = ptrs(l.Items) }, nil
}

func listStatefulSets(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (func(*Objects), error) {
	l, err := cs.AppsV1().StatefulSets(ns).List(ctx, lo)
	if err != nil {
		return nil, err
	}
	return func(o *Objects) { o.StatefulSets = ptrs(l.Items) }, nil
}

func listReplicaSets(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (func(*Objects), error) {
	l, err := cs.AppsV1().ReplicaSets(ns).List(ctx, lo)
	if err != nil {
		return nil, err
	}
	return func(o *Objects) { o.ReplicaSets = ptrs(l.Items) }, nil
}

func listJobs(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (func(*Objects), error) {
	l, err := cs.BatchV1().Jobs(ns).List(ctx, lo)
	if err != nil {
		return nil, err
	}
	return func(o *Objects) { o.Jobs = ptrs(l.Items) }, nil
}

func listCronJobs(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (func(*Objects), error) {
	l, err := cs.BatchV1().CronJobs(ns).List(ctx, lo)
	if err != nil {
		return nil, err
	}
	return func(o *Objects) { o.CronJobs = ptrs(l.Items) }, nil
}

func listServices(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (func(*Objects), error) {
	l, err := cs.CoreV1().Services(ns).List(ctx, lo)
	if err != nil {
		return nil, err
	}
	return func(o *Objects) { o.Services = ptrs(l.Items) }, nil
}

func watchPods(f informers.SharedInformerFactory) (cache.SharedIndexInformer, func(string, *Objects)) {
	i := f.Core().V1().Pods()
	return i.Informer(), func(ns string, o *Objects) { o.Pods, _ = i.Lister().Pods(ns).List(labels.Everything()) }
}

func watchDeployments(f informers.SharedInformerFactory) (cache.SharedIndexInformer, func(string, *Objects)) {
	i := f.Apps().V1().Deployments()
	return i.Informer(), func(ns string, o *Objects) { o.Deployments, _ = i.Lister().Deployments(ns).List(labels.Everything()) }
}

func watchStatefulSets(f informers.SharedInformerFactory) (cache.SharedIndexInformer, func(string, *Objects)) {
	i := f.Apps().V1().StatefulSets()
	return i.Informer(), func(ns string, o *Objects) { o.StatefulSets, _ = i.Lister().StatefulSets(ns).List(labels.Everything()) }
}

func watchReplicaSets(f informers.SharedInformerFactory) (cache.SharedIndexInformer, func(string, *Objects)) {
	i := f.Apps().V1().ReplicaSets()
	return i.Informer(), func(ns string, o *Objects) { o.ReplicaSets, _ = i.Lister().ReplicaSets(ns).List(labels.Everything()) }
}

func watchJobs(f informers.SharedInformerFactory) (cache.SharedIndexInformer, func(string, *Objects)) {
	i := f.Batch().V1().Jobs()
	return i.Informer(), func(ns string, o *Objects) { o.Jobs, _ = i.Lister().Jobs(ns).List(labels.Everything()) }
}

func watchCronJobs(f informers.SharedInformerFactory) (cache.SharedIndexInformer, func(string, *Objects)) {
	i := f.Batch().V1().CronJobs()
	return i.Informer(), func(ns string, o *Objects) { o.CronJobs, _ = i.Lister().CronJobs(ns).List(labels.Everything()) }
}

func watchServices(f informers.SharedInformerFactory) (cache.SharedIndexInformer, func(string, *Objects)) {
	i := f.Core().V1().Services()
	return i.Informer(), func(ns string, o *Objects) { o.Services, _ = i.Lister().Services(ns).List(labels.Everything()) }
}

// specSelector turns a workload's label selector into the selector of its
// pods.
func specSelector(s *metav1.LabelSelector, kind config.TargetKind, name string) (labels.Selector, string, error) {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return nil, "", fmt.Errorf("%s/%s has an invalid pod selector: %w", kind, name, err)
	}
	return sel, string(kind) + "/" + name, nil
}

func deploymentPods(ctx context.Context, cs kubernetes.Interface, ns, name string) (labels.Selector, string, error) {
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, "", apiError(err, "get", "deployments.apps", ns, name)
	}
	return specSelector(d.Spec.Selector, config.TargetDeployment, name)
}

func statefulSetPods(ctx context.Context, cs kubernetes.Interface, ns, name string) (labels.Selector, string, error) {
	s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, "", apiError(err, "get", "statefulsets.apps", ns, name)
	}
	return specSelector(s.Spec.Selector, config.TargetStatefulSet, name)
}

func replicaSetPods(ctx context.Context, cs kubernetes.Interface, ns, name string) (labels.Selector, string, error) {
	r, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, "", apiError(err, "get", "replicasets.apps", ns, name)
	}
	return specSelector(r.Spec.Selector, config.TargetReplicaSet, name)
}

func jobPods(ctx context.Context, cs kubernetes.Interface, ns, name string) (labels.Selector, string, error) {
	j, err := cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, "", apiError(err, "get", "jobs.batch", ns, name)
	}
	return specSelector(j.Spec.Selector, config.TargetJob, name)
}

// cronJobPods selects the pods of the cronjob's latest job.
func cronJobPods(ctx context.Context, cs kubernetes.Interface, ns, name string) (labels.Selector, string, error) {
	job, err := latestJob(ctx, cs, ns, name)
	if err != nil {
		return nil, "", err
	}
	sel, _, err := jobPods(ctx, cs, ns, job)
	if err != nil {
		return nil, "", err
	}
	return sel, fmt.Sprintf("cronjob/%s (its latest job %s)", name, job), nil
}

func servicePods(ctx context.Context, cs kubernetes.Interface, ns, name string) (labels.Selector, string, error) {
	s, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, "", apiError(err, "get", "services", ns, name)
	}
	if len(s.Spec.Selector) == 0 {
		return nil, "", connect.TargetNotFound(fmt.Errorf("service/%s has no pod selector; target its pods or workload instead", name))
	}
	return labels.SelectorFromSet(s.Spec.Selector), "service/" + name, nil
}

// latestJob finds the newest job a cronjob created.
func latestJob(ctx context.Context, cs kubernetes.Interface, ns, cronjob string) (string, error) {
	if _, err := cs.BatchV1().CronJobs(ns).Get(ctx, cronjob, metav1.GetOptions{}); err != nil {
		return "", apiError(err, "get", "cronjobs.batch", ns, cronjob)
	}
	jobs, err := cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", apiError(err, "list", "jobs.batch", ns, "")
	}
	latest := ""
	var at metav1.Time
	for _, j := range jobs.Items {
		for _, o := range j.OwnerReferences {
			if o.Kind == "CronJob" && o.Name == cronjob && (latest == "" || at.Before(&j.CreationTimestamp)) {
				latest, at = j.Name, j.CreationTimestamp
			}
		}
	}
	if latest == "" {
		return "", connect.TargetNotFound(fmt.Errorf("cronjob/%s has not run yet: there is no job to target (trigger one with kubectl create job --from=cronjob/%s)",
			cronjob, cronjob))
	}
	return latest, nil
}

// podsOf is a pod by name as a list, for pick.
func podsOf(ctx context.Context, cs kubernetes.Interface, ns, name string) ([]corev1.Pod, error) {
	pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, apiError(err, "get", "pods", ns, name)
	}
	return []corev1.Pod{*pod}, nil
}
