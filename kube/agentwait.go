package kube

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/sourcegraph/conc"
)

// waitAgentPod watches the pods opts selects until the agent container
// runs, and explains every way it can fail to: an image that cannot be
// pulled (the kubelet's message), a crash (its log), or no progress at all
// (the pod's events).
//
// job is the Job whose pod is awaited (nil for an ephemeral container): if
// the Job controller cannot create the pod at all (admission refused it),
// no pod ever appears, and its events say why.
func waitAgentPod(ctx context.Context, env *Env, ns string, opts metav1.ListOptions, container string, job *batchv1.Job, timeout time.Duration, progress func(string)) (*corev1.Pod, error) {
	if timeout <= 0 {
		timeout = time.Minute
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	wctx, fail := context.WithCancelCause(tctx)
	var wg conc.WaitGroup
	defer func() {
		fail(nil)
		wg.Wait()
	}()
	if job != nil {
		wg.Go(func() { watchPodCreation(wctx, env, ns, job, fail) })
	}
	pods := env.Client.CoreV1().Pods(ns)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector, o.FieldSelector = opts.LabelSelector, opts.FieldSelector
			return pods.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector, o.FieldSelector = opts.LabelSelector, opts.FieldSelector
			return pods.Watch(ctx, o)
		},
	}
	var last *corev1.Pod
	var running *corev1.Pod
	reported := ""
	_, err := watchtools.UntilWithSync(wctx, lw, &corev1.Pod{}, nil, func(ev watch.Event) (bool, error) {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok || ev.Type == watch.Deleted {
			return false, nil
		}
		last = p
		if p.Status.Phase == corev1.PodFailed {
			// Rejected by the kubelet before any container ran (not
			// enough CPU or memory on the node, for example).
			return false, fmt.Errorf("the agent pod %s/%s failed on node %s: %s: %s; adjust agent.resources or agent.tolerations",
				p.Namespace, p.Name, p.Spec.NodeName, p.Status.Reason, p.Status.Message)
		}
		for _, s := range append(p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses...) {
			if s.Name != container {
				continue
			}
			switch {
			case s.State.Running != nil:
				running = p
				return true, nil
			case s.State.Waiting != nil && isPullFailure(s.State.Waiting.Reason):
				return false, fmt.Errorf("the agent image %s cannot be pulled on node %s (%s: %s); set agent.image to an image the node can pull (make images writes it as an OCI archive to push to your registry)",
					s.Image, p.Spec.NodeName, s.State.Waiting.Reason, s.State.Waiting.Message)
			case s.State.Terminated != nil:
				return false, fmt.Errorf("the agent exited at start (%s, exit %d): %s", s.State.Terminated.Reason, s.State.Terminated.ExitCode, tail(s.State.Terminated.Message))
			case s.State.Waiting != nil && s.State.Waiting.Reason != reported:
				reported = s.State.Waiting.Reason
				progress("agent pod " + p.Name + ": " + reported)
			}
		}
		return false, nil
	})
	var refused *creationError
	switch {
	case running != nil:
		return running, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.As(context.Cause(wctx), &refused):
		return nil, refused
	case wait.Interrupted(err) || wctx.Err() != nil:
		return nil, timeoutError(ctx, env, ns, last, timeout)
	case err != nil:
		var se *apierrors.StatusError
		if errors.As(err, &se) {
			return nil, apiError(err, "watch", "pods", ns, "")
		}
		return nil, err
	}
	return nil, timeoutError(ctx, env, ns, last, timeout)
}

func isPullFailure(reason string) bool {
	switch reason {
	case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
		return true
	}
	return false
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 400 {
		return "…" + s[len(s)-400:]
	}
	return s
}

func timeoutError(ctx context.Context, env *Env, ns string, pod *corev1.Pod, timeout time.Duration) error {
	if pod == nil {
		return fmt.Errorf("no agent pod appeared in namespace %s within %v (check the Job's events: kubectl -n %s describe jobs -l %s=remocal-agent); raise agent.startupTimeout if the cluster is just slow", ns, timeout, ns, LabelApp)
	}
	evs, err := env.Client.CoreV1().Events(ns).List(context.WithoutCancel(ctx), metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod.Name})
	var lines []string
	if err == nil {
		sort.Slice(evs.Items, func(i, j int) bool { return evs.Items[i].LastTimestamp.Before(&evs.Items[j].LastTimestamp) })
		for _, e := range evs.Items {
			lines = append(lines, fmt.Sprintf("%s %s: %s", e.Type, e.Reason, e.Message))
		}
	}
	if len(lines) == 0 {
		lines = []string{"(no events)"}
	}
	return fmt.Errorf("the agent pod %s/%s did not start within %v (phase %s); its events:\n  %s\nraise agent.startupTimeout if the cluster is just slow",
		ns, pod.Name, timeout, pod.Status.Phase, strings.Join(lines, "\n  "))
}

// creationError is the Job controller's reason for not creating the
// agent's pod.
type creationError struct {
	ns, message string
}

func (e *creationError) Error() string {
	if hint := podSecurityHint(e.message); hint != "" {
		return fmt.Sprintf("namespace %s refuses the agent's pod: %s; %s", e.ns, e.message, hint)
	}
	return fmt.Sprintf("the agent's pod cannot be created in namespace %s: %s; check the namespace's quotas and admission policies, or run agents elsewhere with agent.namespace", e.ns, e.message)
}

// podSecurityHint says what to do when Pod Security admission refused the
// agent, and nothing for other refusals.
func podSecurityHint(message string) string {
	if !strings.Contains(message, "PodSecurity") {
		return ""
	}
	return "the agent needs hostPID (or, as an ephemeral container, to share the pod) and the capabilities NET_ADMIN, SYS_ADMIN and SYS_PTRACE, " +
		"which only the privileged Pod Security level allows: run the agent as a Job (not ephemeral) with agent.namespace set to a namespace labelled pod-security.kubernetes.io/enforce=privileged, " +
		"or ask an administrator for an exemption (docs/kubernetes.md, Permissions)"
}

// watchPodCreation polls the Job's FailedCreate events (of this Job, by
// UID: a replaced Job of the same name may have left some) until one
// appears or ctx ends. Events it may not list leave the wait to the
// timeout.
func watchPodCreation(ctx context.Context, env *Env, ns string, job *batchv1.Job, fail context.CancelCauseFunc) {
	selector := fields.Set{"involvedObject.uid": string(job.UID), "reason": "FailedCreate"}.AsSelector().String()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		evs, err := env.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: selector})
		if err == nil && len(evs.Items) > 0 {
			fail(&creationError{ns: ns, message: evs.Items[len(evs.Items)-1].Message})
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
