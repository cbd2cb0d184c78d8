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
	job := agentJob(target, "shop", target.ContainerID, o, "remocal-agent-key-test")
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
	wantArgs := []string{"--listen", "tcp:127.0.0.1:47113", "--idle-ttl", "1m30s", "--container-id", "containerd://abc", "--target-name", "deployment/api", "--node-ip=$(REMOCAL_NODE_IP)",
		"--secret-file", "/var/run/remocal/agent/key"}
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
	checkAgentSecurity(t, c.SecurityContext)
	if spec.ActiveDeadlineSeconds == nil || *spec.ActiveDeadlineSeconds != 12*3600 {
		t.Errorf("activeDeadlineSeconds %v, want 12 h as a backstop", spec.ActiveDeadlineSeconds)
	}
	if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("termination message policy %q: an agent failing at start must say why in its status", c.TerminationMessagePolicy)
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
	job := agentJob(nil, "shop", "targetless/shop", AgentOptions{Image: "a", IdleTTL: time.Minute}, "remocal-agent-key-test")
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

// checkAgentSecurity holds the agent's container to what it was measured
// to need (docs/kubernetes.md): every capability dropped but six, no
// privilege, no escalation, a read-only root, the runtime's seccomp profile.
func checkAgentSecurity(t *testing.T, sc *corev1.SecurityContext) {
	t.Helper()
	want := &corev1.SecurityContext{
		RunAsUser: ptr(int64(0)),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"},
			Add: []corev1.Capability{"DAC_OVERRIDE", "NET_ADMIN", "SETGID", "SETUID", "SYS_ADMIN", "SYS_PTRACE"}},
		AllowPrivilegeEscalation: ptr(false),
		ReadOnlyRootFilesystem:   ptr(true),
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if diff := cmp.Diff(want, sc); diff != "" {
		t.Errorf("security context (-want +got):\n%s", diff)
	}
}

// Without agent.resources the agent has small requests and bounded
// limits; a value of the user's replaces the default of its resource, and
// a default never makes the user's values invalid (request above limit).
func TestAgentResources(t *testing.T) {
	q := resource.MustParse
	for _, tc := range []struct {
		name     string
		in       *config.Resources
		req, lim corev1.ResourceList
	}{
		{"defaults", nil,
			corev1.ResourceList{"cpu": q("10m"), "memory": q("32Mi")}, corev1.ResourceList{"cpu": q("1"), "memory": q("256Mi")}},
		{"user's values replace the defaults per resource", &config.Resources{Requests: map[string]string{"cpu": "50m"}, Limits: map[string]string{"memory": "1Gi"}},
			corev1.ResourceList{"cpu": q("50m"), "memory": q("32Mi")}, corev1.ResourceList{"cpu": q("1"), "memory": q("1Gi")}},
		{"a request above the default limit drops that limit", &config.Resources{Requests: map[string]string{"cpu": "500", "memory": "1Gi"}},
			corev1.ResourceList{"cpu": q("500"), "memory": q("1Gi")}, corev1.ResourceList{}},
		{"a limit below the default request drops that request", &config.Resources{Limits: map[string]string{"cpu": "5m", "memory": "16Mi"}},
			corev1.ResourceList{}, corev1.ResourceList{"cpu": q("5m"), "memory": q("16Mi")}},
		{"other resources pass through", &config.Resources{Limits: map[string]string{"ephemeral-storage": "1Gi"}},
			corev1.ResourceList{"cpu": q("10m"), "memory": q("32Mi")}, corev1.ResourceList{"cpu": q("1"), "memory": q("256Mi"), "ephemeral-storage": q("1Gi")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := resources(tc.in)
			if diff := cmp.Diff(tc.req, got.Requests); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.lim, got.Limits); diff != "" {
				t.Errorf("limits (-want +got):\n%s", diff)
			}
		})
	}
}
