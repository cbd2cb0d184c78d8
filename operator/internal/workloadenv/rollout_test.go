package workloadenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

// The decisions of WaitRolledOut on states the controllers produce
// (cluster_test.go lets real controllers produce them).

func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

func rs(name, uid, owner, rev, hash string) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid),
		Labels:          map[string]string{"app": "w", appsv1.DefaultDeploymentUniqueLabelKey: hash},
		Annotations:     map[string]string{"deployment.kubernetes.io/revision": rev},
		OwnerReferences: []metav1.OwnerReference{{Kind: "Deployment", Name: "w", UID: types.UID(owner), Controller: ptr(true)}}}}
}

func pod(name, ownerKind, ownerUID, hashLabel, hash string, ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels:          map[string]string{"app": "w", hashLabel: hash},
			OwnerReferences: []metav1.OwnerReference{{Kind: ownerKind, Name: "x", UID: types.UID(ownerUID), Controller: ptr(true)}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

func deployment(replicas int32) *appsv1.Deployment {
	d := objects(Deployment, baseEnv()...).(*appsv1.Deployment)
	d.Generation = 2
	d.Annotations = map[string]string{"deployment.kubernetes.io/revision": "2"}
	d.Spec.Replicas = ptr(replicas)
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: replicas, UpdatedReplicas: replicas, AvailableReplicas: replicas}
	return d
}

var depRef = Ref{Namespace: ns, Kind: Deployment, Name: "w"}

func rolloutErr(t *testing.T, err error) *RolloutError {
	t.Helper()
	var re *RolloutError
	if !errors.As(err, &re) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitRolledOut: %v, want a RolloutError wrapping the deadline", err)
	}
	return re
}

// Counts complete, but an old pod still terminates: not done until it is
// gone. A pod of another Deployment's ReplicaSet the selector also
// matches is not waited for.
func TestWaitDeploymentWaitsForTerminatingOldPod(t *testing.T) {
	old := pod("w-old-1", "ReplicaSet", "rs-old", appsv1.DefaultDeploymentUniqueLabelKey, "h1", false)
	old.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	old.Finalizers = []string{"test/hold"}
	cs := fake.NewClientset(deployment(2),
		rs("w-h1", "rs-old", "dep-uid", "1", "h1"), rs("w-h2", "rs-new", "dep-uid", "2", "h2"),
		rs("other-h9", "rs-other", "other-dep", "1", "h9"),
		pod("w-new-1", "ReplicaSet", "rs-new", appsv1.DefaultDeploymentUniqueLabelKey, "h2", true),
		pod("w-new-2", "ReplicaSet", "rs-new", appsv1.DefaultDeploymentUniqueLabelKey, "h2", true),
		pod("other-1", "ReplicaSet", "rs-other", appsv1.DefaultDeploymentUniqueLabelKey, "h9", true),
		old)
	re := rolloutErr(t, WaitRolledOut(shortCtx(t), cs, depRef))
	if len(re.Pods) != 1 || re.Pods[0].Name != "w-old-1" || !re.Pods[0].Old || !re.Pods[0].Terminating {
		t.Errorf("pods in the way %v, want only w-old-1, old and terminating", re.Pods)
	}
	if !strings.Contains(re.Error(), "w-old-1 (old template, terminating") {
		t.Errorf("the error does not name the pod: %v", re)
	}
	if err := cs.CoreV1().Pods(ns).Delete(context.Background(), "w-old-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := WaitRolledOut(ctxT(t), cs, depRef); err != nil {
		t.Errorf("with the old pod gone: %v", err)
	}
}

// A generation the controller has not observed is not complete, whatever
// the counts say; nor are counts short of the wanted replicas.
func TestWaitDeploymentNotSynced(t *testing.T) {
	for name, change := range map[string]func(*appsv1.Deployment){
		"generation": func(d *appsv1.Deployment) { d.Generation = 3 },
		"updated":    func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 1 },
		"available":  func(d *appsv1.Deployment) { d.Status.AvailableReplicas = 1 },
		"surge":      func(d *appsv1.Deployment) { d.Status.Replicas = 3 },
	} {
		t.Run(name, func(t *testing.T) {
			d := deployment(2)
			change(d)
			cs := fake.NewClientset(d, rs("w-h2", "rs-new", "dep-uid", "2", "h2"),
				pod("w-new-1", "ReplicaSet", "rs-new", appsv1.DefaultDeploymentUniqueLabelKey, "h2", true),
				pod("w-new-2", "ReplicaSet", "rs-new", appsv1.DefaultDeploymentUniqueLabelKey, "h2", true))
			re := rolloutErr(t, WaitRolledOut(shortCtx(t), cs, depRef))
			if !strings.Contains(re.Status, "deployment generation") {
				t.Errorf("status %q", re.Status)
			}
		})
	}
}

// A pod of the new template that crashes is named with its reason.
func TestWaitNamesCrashingPod(t *testing.T) {
	d := deployment(1)
	d.Status.AvailableReplicas = 0
	bad := pod("w-new-1", "ReplicaSet", "rs-new", appsv1.DefaultDeploymentUniqueLabelKey, "h2", false)
	bad.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "worker",
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 10s restarting failed container"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}}}
	cs := fake.NewClientset(d, rs("w-h2", "rs-new", "dep-uid", "2", "h2"), bad)
	err := rolloutErr(t, WaitRolledOut(shortCtx(t), cs, depRef)).Error()
	for _, w := range []string{"w-new-1", "container worker CrashLoopBackOff", "exit code 3", "kubectl -n shop describe pod"} {
		if !strings.Contains(err, w) {
			t.Errorf("%q does not say %q", err, w)
		}
	}
}

func TestWaitZeroReplicas(t *testing.T) {
	cs := fake.NewClientset(deployment(0), rs("w-h2", "rs-new", "dep-uid", "2", "h2"))
	if err := WaitRolledOut(ctxT(t), cs, depRef); err != nil {
		t.Error(err)
	}
}

func TestWaitStatefulSet(t *testing.T) {
	s := objects(StatefulSet, baseEnv()...).(*appsv1.StatefulSet)
	s.Generation, s.Spec.Replicas = 2, ptr(int32(2))
	s.Status = appsv1.StatefulSetStatus{ObservedGeneration: 2, Replicas: 2, ReadyReplicas: 2, UpdatedReplicas: 1,
		CurrentRevision: "w-r1", UpdateRevision: "w-r2"}
	key := appsv1.ControllerRevisionHashLabelKey
	cs := fake.NewClientset(s,
		pod("w-0", "StatefulSet", "sts-uid", key, "w-r2", true),
		pod("w-1", "StatefulSet", "sts-uid", key, "w-r1", true),
		pod("stranger", "StatefulSet", "other", key, "x", true))
	ref := Ref{Namespace: ns, Kind: StatefulSet, Name: "w"}
	re := rolloutErr(t, WaitRolledOut(shortCtx(t), cs, ref))
	if len(re.Pods) != 1 || re.Pods[0].Name != "w-1" || !re.Pods[0].Old {
		t.Errorf("pods in the way %v, want w-1 (old)", re.Pods)
	}
	// The controller replaced w-1 and moved currentRevision.
	s.Status.UpdatedReplicas, s.Status.CurrentRevision = 2, "w-r2"
	objs := []runtime.Object{s, pod("w-0", "StatefulSet", "sts-uid", key, "w-r2", true), pod("w-1", "StatefulSet", "sts-uid", key, "w-r2", true)}
	if err := WaitRolledOut(ctxT(t), fake.NewClientset(objs...), ref); err != nil {
		t.Error(err)
	}
}

// A paused Deployment says so, and a long list of pods is cut short.
func TestWaitSaysPausedAndBoundsPods(t *testing.T) {
	d := deployment(12)
	d.Spec.Paused = true
	d.Status.UpdatedReplicas = 0
	objs := []runtime.Object{d, rs("w-h1", "rs-old", "dep-uid", "1", "h1"), rs("w-h2", "rs-new", "dep-uid", "2", "h2")}
	for i := range 12 {
		objs = append(objs, pod(fmt.Sprintf("w-old-%02d", i), "ReplicaSet", "rs-old", appsv1.DefaultDeploymentUniqueLabelKey, "h1", true))
	}
	re := rolloutErr(t, WaitRolledOut(shortCtx(t), fake.NewClientset(objs...), depRef))
	msg := re.Error()
	if len(re.Pods) != 12 || !strings.Contains(msg, "paused") || !strings.Contains(msg, "w-old-09 (old template") ||
		strings.Contains(msg, "w-old-10") || !strings.Contains(msg, "and 2 more pods") {
		t.Errorf("%d pods; message %s", len(re.Pods), msg)
	}
}
