package workloadenv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// The poll's backoff: a rollout takes seconds, so the first look comes
// soon and later ones at most every maxPoll, a few requests a second
// at worst per workload.
const (
	firstPoll = 100 * time.Millisecond
	maxPoll   = time.Second
)

// PodState is what a pod of the workload is doing, for a RolloutError.
type PodState struct {
	Name string
	// Old: the pod runs an earlier template (it must be gone).
	Old bool
	// Terminating: the pod is being deleted (it may still read).
	Terminating bool
	// State: phase and the most telling reason, e.g. "Running,
	// CrashLoopBackOff: back-off 10s restarting failed container" or
	// "Pending, Unschedulable: 0/1 nodes are available".
	State string
}

func (p PodState) String() string {
	s := p.Name + " ("
	if p.Old {
		s += "old template, "
	}
	if p.Terminating {
		s += "terminating, "
	}
	return s + p.State + ")"
}

// RolloutError is a rollout that did not complete before the context
// ended: what the workload reported last, and each pod still in the way.
// It wraps the context's error.
type RolloutError struct {
	Ref Ref
	// Status is the workload's last reported state, in words.
	Status string
	// Pods are the pods of an older template and those of the current
	// one not ready.
	Pods []PodState
	Err  error
}

func (e *RolloutError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the rollout of %s did not complete: %v; %s", e.Ref, e.Err, e.Status)
	const most = 10 // a workload of hundreds of pods: the first ones say enough
	for i, p := range e.Pods {
		if i == most {
			fmt.Fprintf(&b, "; and %d more pods", len(e.Pods)-most)
			break
		}
		fmt.Fprintf(&b, "; pod %s", p)
	}
	b.WriteString("; see `kubectl -n " + e.Ref.Namespace + " describe pod` for the pods named, fix what keeps them from running (or revert the change), and try again")
	return b.String()
}

func (e *RolloutError) Unwrap() error { return e.Err }

// WaitRolledOut waits until every pod of the workload runs its current
// pod template and is ready, and no pod of an earlier template exists any
// more, not even terminating: a pod being deleted may still read its old
// queue, and the operator drains that queue only once nobody reads it.
//
// Deployment: observedGeneration ≥ generation, updated = replicas =
// available = the wanted replicas, and no pod of another ReplicaSet of it.
// StatefulSet: observedGeneration ≥ generation, currentRevision =
// updateRevision, updated = ready = the wanted replicas, and no pod with
// another controller-revision-hash. (A StatefulSet with the OnDelete
// strategy completes only once someone deletes its old pods.)
//
// It polls, with backoff, until ctx ends; then it returns a RolloutError
// naming the pods in the way and their state.
func WaitRolledOut(ctx context.Context, cs kubernetes.Interface, ref Ref) error {
	delay := firstPoll
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last *RolloutError
	for {
		select {
		case <-ctx.Done():
			if last == nil {
				last = &RolloutError{Ref: ref, Status: "not looked at yet"}
			}
			last.Err = ctx.Err()
			return last
		case <-timer.C:
		}
		pending, err := check(ctx, cs, ref)
		switch {
		case err == nil && pending == nil:
			return nil
		case err != nil && ctx.Err() == nil:
			var werr *Error
			if errors.As(err, &werr) || errors.Is(err, ErrNotFound) {
				return err
			}
			// Anything else (the apiserver unreachable a moment) is
			// retried until ctx ends, and said then.
			last = &RolloutError{Ref: ref, Status: "last look failed: " + err.Error()}
		case pending != nil:
			last = pending
		}
		timer.Reset(delay)
		delay = min(2*delay, maxPoll)
	}
}

// check looks once: nil, nil when the rollout is complete.
func check(ctx context.Context, cs kubernetes.Interface, ref Ref) (*RolloutError, error) {
	w, err := get(ctx, cs, ref)
	if err != nil {
		return nil, err
	}
	if w.d != nil {
		return checkDeployment(ctx, cs, ref, w.d)
	}
	return checkStatefulSet(ctx, cs, ref, w.s)
}

func checkDeployment(ctx context.Context, cs kubernetes.Interface, ref Ref, d *appsv1.Deployment) (*RolloutError, error) {
	want := replicas(d.Spec.Replicas)
	st := d.Status
	status := fmt.Sprintf("deployment generation %d observed %d, replicas wanted %d, updated %d, total %d, available %d",
		d.Generation, st.ObservedGeneration, want, st.UpdatedReplicas, st.Replicas, st.AvailableReplicas)
	synced := st.ObservedGeneration >= d.Generation
	// The current ReplicaSet is the one of the Deployment's revision,
	// which the controller writes when it has synced the generation.
	rss, err := cs.AppsV1().ReplicaSets(ref.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector(d.Spec.Selector)})
	if err != nil {
		return nil, fmt.Errorf("list the replicasets of %s: %w", ref, err)
	}
	rev := d.Annotations["deployment.kubernetes.io/revision"]
	current := ""
	others := map[types.UID]bool{} // ReplicaSets of somebody else
	for _, rs := range rss.Items {
		if !ownedBy(rs.OwnerReferences, d.UID) {
			others[rs.UID] = true
		} else if synced && rev != "" && rs.Annotations["deployment.kubernetes.io/revision"] == rev {
			current = rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		}
	}
	if synced && current == "" {
		synced = false
		status += ", its current replicaset not found yet"
	}
	pods, err := podStates(ctx, cs, ref, selector(d.Spec.Selector), appsv1.DefaultDeploymentUniqueLabelKey, current, func(p *corev1.Pod) bool {
		// The Deployment's pods are those of its ReplicaSets, including
		// ReplicaSets already deleted while their last pods terminate:
		// every pod its selector matches except those another
		// controller owns.
		c := metav1.GetControllerOfNoCopy(p)
		return c == nil || (c.Kind == "ReplicaSet" && !others[c.UID])
	})
	if err != nil {
		return nil, err
	}
	done := synced && st.UpdatedReplicas == want && st.Replicas == want && st.AvailableReplicas == want && !anyOld(pods)
	if done {
		return nil, nil
	}
	if d.Spec.Paused {
		status += " (paused: it rolls out once resumed)"
	}
	for _, c := range st.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse {
			status += ", " + c.Reason + ": " + clip(c.Message)
		}
	}
	return &RolloutError{Ref: ref, Status: status, Pods: pods}, nil
}

func checkStatefulSet(ctx context.Context, cs kubernetes.Interface, ref Ref, s *appsv1.StatefulSet) (*RolloutError, error) {
	want := replicas(s.Spec.Replicas)
	st := s.Status
	status := fmt.Sprintf("statefulset generation %d observed %d, revision current %q update %q, replicas wanted %d, updated %d, total %d, ready %d",
		s.Generation, st.ObservedGeneration, st.CurrentRevision, st.UpdateRevision, want, st.UpdatedReplicas, st.Replicas, st.ReadyReplicas)
	synced := st.ObservedGeneration >= s.Generation && st.UpdateRevision != ""
	current := ""
	if synced {
		current = st.UpdateRevision
	}
	pods, err := podStates(ctx, cs, ref, selector(s.Spec.Selector), appsv1.ControllerRevisionHashLabelKey, current, func(p *corev1.Pod) bool {
		return ownedBy(p.OwnerReferences, s.UID)
	})
	if err != nil {
		return nil, err
	}
	done := synced && st.CurrentRevision == st.UpdateRevision && st.UpdatedReplicas == want &&
		st.Replicas == want && st.ReadyReplicas == want && !anyOld(pods)
	if done {
		return nil, nil
	}
	if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		status += " (update strategy OnDelete: old pods are replaced only when deleted)"
	}
	return &RolloutError{Ref: ref, Status: status, Pods: pods}, nil
}

// podStates lists the workload's pods and returns those in the way: of
// another template than current (by hashLabel; every pod when current is
// not known yet), or not ready.
func podStates(ctx context.Context, cs kubernetes.Interface, ref Ref, sel, hashLabel, current string, mine func(*corev1.Pod) bool) ([]PodState, error) {
	list, err := cs.CoreV1().Pods(ref.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list the pods of %s: %w", ref, err)
	}
	var out []PodState
	for i := range list.Items {
		p := &list.Items[i]
		if !mine(p) {
			continue
		}
		old := current == "" || p.Labels[hashLabel] != current
		terminating := p.DeletionTimestamp != nil
		if !old && !terminating && ready(p) {
			continue
		}
		// A terminating pod of the current template is not ready and
		// not counted, but it reads the current queue: only its state
		// matters, not its age.
		out = append(out, PodState{Name: p.Name, Old: old, Terminating: terminating, State: describe(p)})
	}
	slices.SortFunc(out, func(a, b PodState) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func anyOld(ps []PodState) bool {
	return slices.ContainsFunc(ps, func(p PodState) bool { return p.Old })
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// describe is a pod's phase and the most telling reason it is not ready:
// a container waiting (CrashLoopBackOff, ErrImagePull) or terminated, the
// scheduler's refusal, or the Ready condition's message.
func describe(p *corev1.Pod) string {
	s := string(p.Status.Phase)
	if s == "" {
		s = "Pending"
	}
	for _, c := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		switch {
		case c.State.Waiting != nil && c.State.Waiting.Reason != "" && c.State.Waiting.Reason != "ContainerCreating" && c.State.Waiting.Reason != "PodInitializing":
			s += fmt.Sprintf(", container %s %s", c.Name, c.State.Waiting.Reason)
			if m := c.State.Waiting.Message; m != "" {
				s += ": " + clip(m)
			}
			if t := c.LastTerminationState.Terminated; t != nil {
				s += fmt.Sprintf(" (last exit code %d, %s)", t.ExitCode, t.Reason)
			}
			return s
		case c.State.Terminated != nil:
			return s + fmt.Sprintf(", container %s terminated: exit code %d, %s", c.Name, c.State.Terminated.ExitCode, c.State.Terminated.Reason)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return s + ", " + c.Reason + ": " + clip(c.Message)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue {
			s += ", not ready"
			if c.Message != "" {
				s += ": " + clip(c.Message)
			}
			for _, cs := range p.Status.ContainerStatuses {
				if cs.State.Running != nil && !cs.Ready {
					s += fmt.Sprintf(" (container %s running, its readiness probe failing)", cs.Name)
				}
			}
			return s
		}
	}
	return s
}

// clip bounds a message from the cluster in an error.
func clip(s string) string {
	const most = 200
	if len(s) > most {
		return s[:most] + "…"
	}
	return s
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

func selector(s *metav1.LabelSelector) string {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		// The apiserver validated it; an invalid one selects nothing we
		// could wait for, and listing everything would be wrong.
		return "remocal.invalid/selector=true"
	}
	return sel.String()
}

func ownedBy(refs []metav1.OwnerReference, uid types.UID) bool {
	return slices.ContainsFunc(refs, func(r metav1.OwnerReference) bool { return r.UID == uid })
}
