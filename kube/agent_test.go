package kube

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remocal/remocal/protocol/config"
)

// The agent section of the configuration reaches the Job's pod as a user
// would write it in a pod spec; what remocal itself needs (node, hostPID,
// capabilities, no service account token, TTL) is always there. The real
// Job is exercised against the cluster in test/e2e/kube.
func TestAgentJobFromConfig(t *testing.T) {
	target := &Resolved{Ref: "deployment/api", Namespace: "shop", Container: "app", ContainerID: "containerd://abc",
		Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "api-1"}, Spec: corev1.PodSpec{NodeName: "node-7"}}}
	five := 5
	o := AgentOptions{
		Image: "registry.example/remocal/agent:1.2.3", PullPolicy: corev1.PullAlways, PullSecrets: []string{"regcred"}, IdleTTL: 90 * time.Second,
		Tolerations: []config.Toleration{{Key: "dedicated", Operator: "Equal", Value: "gpu", Effect: "NoSchedule", TolerationSeconds: &five}},
		Resources:   &config.Resources{Requests: map[string]string{"cpu": "50m"}, Limits: map[string]string{"memory": "64Mi"}},
		Labels:      map[string]string{"team": "shop"},
		Annotations: map[string]string{"cost-center": "42"},
	}
	job := agentJob(target, "shop", target.ContainerID, o)
	spec := job.Spec.Template.Spec
	c := spec.Containers[0]

	if job.Namespace != "shop" || job.Name != "remocal-agent-"+agentKey(target.ContainerID)[:16] {
		t.Errorf("job %s/%s: want a name derived from the container, so concurrent sessions meet", job.Namespace, job.Name)
	}
	if spec.NodeName != "node-7" || !spec.HostPID {
		t.Errorf("node %q hostPID %v: the agent must run on the target's node and see its processes", spec.NodeName, spec.HostPID)
	}
	if c.Image != o.Image || c.ImagePullPolicy != corev1.PullAlways || len(spec.ImagePullSecrets) != 1 || spec.ImagePullSecrets[0].Name != "regcred" {
		t.Errorf("image %s %s, pull secrets %v", c.Image, c.ImagePullPolicy, spec.ImagePullSecrets)
	}
	wantArgs := []string{"--listen", "tcp:127.0.0.1:47113", "--idle-ttl", "1m30s", "--container-id", "containerd://abc", "--target-name", "deployment/api", "--node-ip=$(REMOCAL_NODE_IP)"}
	if diff := cmp.Diff(wantArgs, c.Args); diff != "" || !slices.Equal(c.Command, AgentCommand) {
		t.Errorf("command %v, args (-want +got):\n%s", c.Command, diff)
	}
	if len(c.Env) != 1 || c.Env[0].Name != "REMOCAL_NODE_IP" || c.Env[0].ValueFrom.FieldRef.FieldPath != "status.hostIP" {
		t.Errorf("env %+v: the agent must learn the node's IP (kubelet probes come from it)", c.Env)
	}
	wantTol := []corev1.Toleration{{Key: "dedicated", Operator: "Equal", Value: "gpu", Effect: "NoSchedule", TolerationSeconds: ptr(int64(5))}}
	if diff := cmp.Diff(wantTol, spec.Tolerations); diff != "" {
		t.Errorf("tolerations (-want +got):\n%s", diff)
	}
	if got := c.Resources.Requests[corev1.ResourceCPU]; got.Cmp(resource.MustParse("50m")) != 0 {
		t.Errorf("cpu request %v", got.String())
	}
	if got := c.Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("64Mi")) != 0 {
		t.Errorf("memory limit %v", got.String())
	}
	for _, labels := range []map[string]string{job.Labels, job.Spec.Template.Labels} {
		if labels["team"] != "shop" || labels[LabelApp] != "remocal-agent" || labels[LabelTarget] != "api-1" {
			t.Errorf("labels %v: want the user's and remocal's", labels)
		}
	}
	if job.Spec.Template.Annotations["cost-center"] != "42" || job.Annotations["cost-center"] != "42" {
		t.Errorf("annotations %v / %v", job.Annotations, job.Spec.Template.Annotations)
	}
	caps := c.SecurityContext.Capabilities.Add
	if diff := cmp.Diff([]corev1.Capability{"NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"}, caps); diff != "" || c.SecurityContext.Privileged != nil {
		t.Errorf("capabilities (-want +got):\n%s privileged %v", diff, c.SecurityContext.Privileged)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the agent never calls the API: its token must not be mounted")
	}
	if job.Spec.TTLSecondsAfterFinished == nil || *job.Spec.BackoffLimit != 0 || spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("ttl %v backoff %v restart %v: a failed agent must not be retried, a finished one must be cleaned up",
			job.Spec.TTLSecondsAfterFinished, *job.Spec.BackoffLimit, spec.RestartPolicy)
	}
}

// Without tolerations of its own the agent tolerates every taint: it must
// run wherever its target runs. A targetless agent is not pinned anywhere.
func TestAgentJobDefaults(t *testing.T) {
	job := agentJob(nil, "shop", "targetless/shop", AgentOptions{Image: "a", IdleTTL: time.Minute})
	spec := job.Spec.Template.Spec
	if diff := cmp.Diff([]corev1.Toleration{{Operator: corev1.TolerationOpExists}}, spec.Tolerations); diff != "" {
		t.Errorf("tolerations (-want +got):\n%s", diff)
	}
	if spec.NodeName != "" || spec.HostPID {
		t.Errorf("a targetless agent is pinned (%q) or sees the node's processes (%v)", spec.NodeName, spec.HostPID)
	}
	if args := spec.Containers[0].Args; !slices.Contains(args, "--targetless") {
		t.Errorf("args %v", args)
	}
}
