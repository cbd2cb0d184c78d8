package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

var keyTarget = &Resolved{Ref: "deployment/api", Namespace: "shop", Container: "app", ContainerID: "containerd://abc",
	Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "api-1"}, Spec: corev1.PodSpec{NodeName: "node-7"}}}

// The key reaches the agent's container alone, as a read-only file only
// root can read, and the agent is told where.
func TestAgentJobMountsItsKey(t *testing.T) {
	job := agentJob(keyTarget, "shop", keyTarget.ContainerID, AgentOptions{Image: "a"}, "remocal-agent-key-0a1b2c3d4e")
	spec := job.Spec.Template.Spec
	if jobSecret(job) != "remocal-agent-key-0a1b2c3d4e" || *spec.Volumes[0].Secret.DefaultMode != 0o400 {
		t.Errorf("volumes %+v", spec.Volumes)
	}
	m := spec.Containers[0].VolumeMounts
	if len(m) != 1 || m[0].Name != keyVolume || !m[0].ReadOnly || m[0].MountPath+"/"+keyItem != "/var/run/remocal/agent/key" {
		t.Errorf("mounts %+v", m)
	}
	if !isAgentJob(job) {
		t.Error("remocal's own Job is not recognised as an agent Job")
	}
}

// agent.labels cannot overwrite the labels by which sessions find an
// agent: a configuration cannot make an agent pass for another target's.
func TestAgentLabelsCannotImpersonate(t *testing.T) {
	o := AgentOptions{Image: "a", Labels: map[string]string{
		LabelAgentFor: agentKey("containerd://someone-elses"), LabelApp: "x", LabelTarget: "other-pod", "team": "shop"}}
	job := agentJob(keyTarget, "shop", keyTarget.ContainerID, o, "s")
	for _, l := range []map[string]string{job.Labels, job.Spec.Template.Labels} {
		if l[LabelAgentFor] != agentKey(keyTarget.ContainerID) || l[LabelApp] != AgentAppName || l[LabelTarget] != "api-1" || l["team"] != "shop" {
			t.Errorf("labels %v", l)
		}
	}
}

func runningAgentPod(name string, labels map[string]string, owner *metav1.OwnerReference, secret string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: labels, UID: types.UID("pod-" + name)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "a", Command: AgentCommand}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "agent", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
	}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	if secret != "" {
		p.Spec.Volumes = []corev1.Volume{{Name: keyVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}}}
	}
	return p
}

// A plain pod carrying an agent's labels and a container named agent is
// not taken for the agent: the session stops with the message, before any
// connection.
func TestImpostorPodIsNotReused(t *testing.T) {
	labels := map[string]string{LabelApp: AgentAppName, LabelAgentFor: agentKey(keyTarget.ContainerID)}
	env := &Env{Client: fake.NewClientset(runningAgentPod("remocal-agent-impostor", labels, nil, "")), Namespace: "shop"}
	_, err := EnsureAgent(context.Background(), env, keyTarget, "shop", AgentOptions{Image: "a"}, func(string) {})
	if !errors.Is(err, ErrNotOurAgent) || !strings.Contains(err.Error(), "the pod remocal-agent-impostor is not the agent remocal created; delete it or ask an administrator") {
		t.Fatalf("EnsureAgent with an impostor pod: %v", err)
	}
}

// Another session's agent is joined with its key, read from the Secret its
// Job mounts, which must be owned by that Job.
func TestRunningAgentIsReusedWithItsKey(t *testing.T) {
	job := agentJob(keyTarget, "shop", keyTarget.ContainerID, AgentOptions{Image: "a"}, "remocal-agent-key-0a1b2c3d4e")
	job.UID = "job-uid"
	owner := metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID, Controller: ptr(true)}
	pod := runningAgentPod(job.Name+"-xyz", job.Spec.Template.Labels, &owner, jobSecret(job))
	secret := func(ownerUID types.UID) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: jobSecret(job), Namespace: "shop",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: ownerUID}}},
			Data: map[string][]byte{keyItem: []byte("the-key-of-the-agent-0123456789")}}
	}
	env := &Env{Client: fake.NewClientset(job, pod, secret(job.UID)), Namespace: "shop"}
	a, err := EnsureAgent(context.Background(), env, keyTarget, "shop", AgentOptions{Image: "a"}, func(string) {})
	if err != nil || !a.Reused || string(a.Key) != "the-key-of-the-agent-0123456789" || a.Pod != pod.Name {
		t.Fatalf("EnsureAgent = %+v, %v", a, err)
	}

	// The same Secret name, made by someone else (not owned by the Job):
	// its key is not the agent's.
	env = &Env{Client: fake.NewClientset(job, pod, secret("someone-else")), Namespace: "shop"}
	if _, err := EnsureAgent(context.Background(), env, keyTarget, "shop", AgentOptions{Image: "a"}, func(string) {}); !errors.Is(err, ErrNotOurAgent) {
		t.Fatalf("EnsureAgent with a foreign Secret: %v", err)
	}
	// A pod claiming the Job as owner with another UID (the Job of that
	// name was replaced, or the pod forged its owner).
	forged := owner
	forged.UID = "another-uid"
	env = &Env{Client: fake.NewClientset(job, runningAgentPod(pod.Name, pod.Labels, &forged, jobSecret(job)), secret(job.UID)), Namespace: "shop"}
	if _, err := EnsureAgent(context.Background(), env, keyTarget, "shop", AgentOptions{Image: "a"}, func(string) {}); !errors.Is(err, ErrNotOurAgent) {
		t.Fatalf("EnsureAgent with a pod of a forged owner: %v", err)
	}
}

// A Job of the agent's name that someone else made (not remocal's agent
// with a key) is not joined.
func TestForeignJobIsNotJoined(t *testing.T) {
	foreign := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: agentJobName(keyTarget.ContainerID), Namespace: "shop", UID: "foreign"},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "evil"}}}}}}
	env := &Env{Client: fake.NewClientset(foreign), Namespace: "shop"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := EnsureAgent(ctx, env, keyTarget, "shop", AgentOptions{Image: "a", StartupTimeout: time.Second}, func(string) {})
	if !errors.Is(err, ErrNotOurAgent) || !strings.Contains(err.Error(), "is not the agent remocal created") {
		t.Fatalf("EnsureAgent with a foreign Job: %v", err)
	}
}
