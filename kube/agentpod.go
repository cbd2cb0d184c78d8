package kube

import (
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remocal/remocal/protocol/config"
)

// AgentCommand is how an agent image is started: remocal's binary at
// /remocal (what `make images` builds). An image of one's own must keep
// that path.
var AgentCommand = []string{"/remocal", "agent"}

// agentArgs are the agent's flags: where it listens and how long it idles,
// then how it finds its target.
func agentArgs(o AgentOptions, target ...string) []string {
	return append([]string{"--listen", fmt.Sprintf("tcp:127.0.0.1:%d", AgentPort), "--idle-ttl", o.IdleTTL.String()}, target...)
}

// jobTarget is how a Job's agent finds its target: by container ID, as a
// host process (hostPID), or none.
func jobTarget(r *Resolved) []string {
	if r == nil {
		return []string{"--targetless"}
	}
	return []string{"--container-id", r.ContainerID, "--target-name", r.Ref, nodeIPArg}
}

// The node's IP reaches the agent through the downward API: kubelet probes
// come from it (on CNIs where they do not come from the pod's gateway), and
// the agent never steals them.
const (
	nodeIPEnv = "REMOCAL_NODE_IP"
	nodeIPArg = "--node-ip=$(" + nodeIPEnv + ")"
)

var nodeIPFromStatus = []corev1.EnvVar{{Name: nodeIPEnv,
	ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}}}

// agentSecurity is what the agent needs: NET_ADMIN for the redirect rules
// in the target's network namespace, SYS_ADMIN for setns, SYS_PTRACE to
// read another container's /proc/PID/{root,environ}. No privileged mode,
// and no SYS_RESOURCE (which some runtimes refuse).
func agentSecurity() *corev1.SecurityContext {
	root := int64(0)
	return &corev1.SecurityContext{
		RunAsUser:    &root,
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"}},
	}
}

func agentJob(r *Resolved, ns, key string, o AgentOptions) *batchv1.Job {
	labels := map[string]string{LabelApp: AgentAppName, LabelAgentFor: agentKey(key)}
	for k, v := range o.Labels {
		labels[k] = v
	}
	zero, ttl := int32(0), int32(60)
	spec := corev1.PodSpec{
		RestartPolicy:                 corev1.RestartPolicyNever,
		TerminationGracePeriodSeconds: ptr(int64(5)),
		Tolerations:                   tolerations(o.Tolerations),
		ImagePullSecrets:              pullSecrets(o.PullSecrets),
		AutomountServiceAccountToken:  ptr(false),
		Containers: []corev1.Container{{
			Name: "agent", Image: o.Image, ImagePullPolicy: o.PullPolicy,
			Command: AgentCommand, Args: agentArgs(o, jobTarget(r)...), Env: nodeIPFromStatus, SecurityContext: agentSecurity(), Resources: resources(o.Resources),
		}},
	}
	if r != nil {
		// Beside the target: on its node, seeing its processes.
		spec.NodeName = r.Pod.Spec.NodeName
		spec.HostPID = true
		labels[LabelTarget] = r.Pod.Name
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "remocal-agent-" + agentKey(key)[:16], Namespace: ns, Labels: labels, Annotations: o.Annotations},
		Spec: batchv1.JobSpec{
			BackoffLimit: &zero, TTLSecondsAfterFinished: &ttl,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: o.Annotations}, Spec: spec},
		},
	}
}

func pullSecrets(names []string) []corev1.LocalObjectReference {
	var refs []corev1.LocalObjectReference
	for _, n := range names {
		refs = append(refs, corev1.LocalObjectReference{Name: n})
	}
	return refs
}

func tolerations(in []config.Toleration) []corev1.Toleration {
	if len(in) == 0 {
		// Wherever the target runs, the agent must run too.
		return []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	}
	out := make([]corev1.Toleration, len(in))
	for i, t := range in {
		out[i] = corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOperator(t.Operator), Value: t.Value, Effect: corev1.TaintEffect(t.Effect)}
		if t.TolerationSeconds != nil {
			out[i].TolerationSeconds = ptr(int64(*t.TolerationSeconds))
		}
	}
	return out
}

func resources(r *config.Resources) corev1.ResourceRequirements {
	var out corev1.ResourceRequirements
	if r == nil {
		return out
	}
	conv := func(m map[string]string) corev1.ResourceList {
		if len(m) == 0 {
			return nil
		}
		l := corev1.ResourceList{}
		for k, v := range m {
			if q, err := resource.ParseQuantity(v); err == nil {
				l[corev1.ResourceName(k)] = q
			}
		}
		return l
	}
	out.Requests, out.Limits = conv(r.Requests), conv(r.Limits)
	return out
}

func ptr[T any](v T) *T { return &v }

func containerRunning(statuses []corev1.ContainerStatus, name string) bool {
	for _, s := range statuses {
		if s.Name == name && s.State.Running != nil {
			return true
		}
	}
	return false
}
