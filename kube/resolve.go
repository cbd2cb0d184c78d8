package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/protocol/config"
)

// KnownSidecars are containers that are never the application: when a
// target names no container, these are skipped.
var KnownSidecars = []string{
	"istio-proxy", "istio-init", "linkerd-proxy", "linkerd-init", "envoy", "envoy-sidecar",
	"cloud-sql-proxy", "cloudsql-proxy", "vault-agent", "vault-agent-init", "datadog-agent",
	"fluent-bit", "fluentd", "otel-collector", "opentelemetry-collector", "aws-otel-collector",
}

// Resolved is the container a session runs in.
type Resolved struct {
	Ref         string // what the user asked for
	Namespace   string
	Pod         *corev1.Pod
	Container   string
	ContainerID string
	// Note explains a choice the user should know about (one pod of
	// several).
	Note string
}

// Describe names the resolved container.
func (r *Resolved) Describe() string {
	return fmt.Sprintf("%s (pod %s/%s, container %s)", r.Ref, r.Namespace, r.Pod.Name, r.Container)
}

// Resolve turns a target reference into one running container.
func Resolve(ctx context.Context, env *Env, ref string) (*Resolved, error) {
	t, err := config.ParseTarget(ref)
	if err != nil {
		return nil, fmt.Errorf("target %s", err)
	}
	cs, ns := env.Client, env.Namespace
	var selector labels.Selector
	var what string
	switch w, ok := WorkloadOf(t.Kind); {
	case t.Kind == config.TargetPod:
		pods, err := podsOf(ctx, cs, ns, t.Name)
		if err != nil {
			return nil, err
		}
		return pick(ref, ns, pods, t.Container, "")
	case t.Kind == config.TargetSelector:
		if selector, err = labels.Parse(t.Name); err != nil {
			return nil, fmt.Errorf("target %q: bad label selector: %v", ref, err)
		}
		what = "pods matching " + t.Name
	case ok:
		if selector, what, err = w.pods(ctx, cs, ns, t.Name); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("target %q is not a Kubernetes workload", ref)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, apiError(err, "list", "pods", ns, "")
	}
	if len(pods.Items) == 0 {
		return nil, connect.TargetNotFound(fmt.Errorf("%s in namespace %s has no pods (selector %s); is it scaled to zero?", what, ns, selector))
	}
	return pick(ref, ns, pods.Items, t.Container, what)
}

// pick chooses the pod and container. With several pods it takes the
// oldest ready one (stable while the workload is steady), and says so:
// without the operator a session serves one pod.
func pick(ref, ns string, pods []corev1.Pod, container, what string) (*Resolved, error) {
	var ready []corev1.Pod
	var why []string
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			ready = append(ready, p)
		} else {
			why = append(why, fmt.Sprintf("%s is %s%s", p.Name, p.Status.Phase, podReason(&p)))
		}
	}
	if len(ready) == 0 {
		return nil, connect.TargetNotFound(fmt.Errorf("target %s is not running: %s; a session needs a running container, so wait until it runs (kubectl -n %s get pods) or pick another target",
			orRef(what, ref), strings.Join(why, "; "), ns))
	}
	slices.SortFunc(ready, func(a, b corev1.Pod) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	pod := ready[0]
	name, err := chooseContainer(&pod, container)
	if err != nil {
		return nil, err
	}
	id := ""
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == name {
			if cs.State.Running == nil {
				return nil, connect.TargetNotFound(fmt.Errorf("container %s of pod %s is not running%s", name, pod.Name, containerReason(cs)))
			}
			id = cs.ContainerID
		}
	}
	if id == "" {
		return nil, fmt.Errorf("container %s of pod %s has no container ID yet; is it starting?", name, pod.Name)
	}
	r := &Resolved{Ref: ref, Namespace: ns, Pod: &pod, Container: name, ContainerID: id}
	if len(ready) > 1 {
		r.Note = fmt.Sprintf("%s has %d running pods; this session uses %s (the oldest), so only its traffic is mirrored or stolen; the other pods serve as before",
			orRef(what, ref), len(ready), pod.Name)
	}
	return r, nil
}

func orRef(what, ref string) string {
	if what != "" {
		return what
	}
	return ref
}

// AppContainers are the containers a session may pick, in the pod's order
// (the first is the default), without known sidecars. Init containers,
// native sidecars among them, never run the application.
func AppContainers(spec *corev1.PodSpec) []string {
	var out []string
	for _, c := range spec.Containers {
		if !slices.Contains(KnownSidecars, c.Name) {
			out = append(out, c.Name)
		}
	}
	return out
}

func chooseContainer(pod *corev1.Pod, want string) (string, error) {
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	if want != "" {
		if slices.Contains(names, want) {
			return want, nil
		}
		return "", connect.TargetNotFound(fmt.Errorf("pod %s has no container %q; its containers are %s", pod.Name, want, strings.Join(names, ", ")))
	}
	if apps := AppContainers(&pod.Spec); len(apps) > 0 {
		return apps[0], nil
	}
	return "", fmt.Errorf("pod %s has only sidecar containers (%s); name one with /container/NAME", pod.Name, strings.Join(names, ", "))
}

func podReason(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if r := containerReason(cs); r != "" {
			return r
		}
	}
	if p.Status.Reason != "" {
		return " (" + p.Status.Reason + ")"
	}
	return ""
}

func containerReason(cs corev1.ContainerStatus) string {
	switch {
	case cs.State.Waiting != nil && cs.State.Waiting.Message == "":
		return fmt.Sprintf(" (%s)", cs.State.Waiting.Reason)
	case cs.State.Waiting != nil:
		return fmt.Sprintf(" (%s: %s)", cs.State.Waiting.Reason, cs.State.Waiting.Message)
	case cs.State.Terminated != nil:
		return fmt.Sprintf(" (terminated: %s, exit %d)", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
	}
	return ""
}

// apiError explains API failures users hit: a missing object, and missing
// permissions, naming the verb and resource to ask for.
func apiError(err error, verb, resource, ns, name string) error {
	switch {
	case apierrors.IsNotFound(err):
		return connect.TargetNotFound(fmt.Errorf("%s %q not found in namespace %s", strings.SplitN(resource, ".", 2)[0], name, ns))
	case apierrors.IsForbidden(err) && podSecurityHint(err.Error()) != "":
		// Admission, not RBAC: the account may, the namespace refuses.
		return fmt.Errorf("namespace %s refuses the agent: %v; %s", ns, err, podSecurityHint(err.Error()))
	case apierrors.IsForbidden(err):
		return fmt.Errorf("your Kubernetes account may not %s %s in namespace %s (%v); ask an administrator for that permission, e.g. the ClusterRole in docs/kubernetes.md", verb, resource, ns, err)
	}
	return fmt.Errorf("%s %s %s/%s: %w", verb, resource, ns, name, err)
}
