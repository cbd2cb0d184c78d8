package kube

import (
	"fmt"
	"slices"
	"time"

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

// AgentCapabilities are the only capabilities of the agent's container: it
// drops every other, the container runtime's defaults included. Each is
// needed by a system call the agent makes on a target owned by another
// user, measured on the test cluster (docs/kubernetes.md, "The agent's
// pod"):
//   - DAC_OVERRIDE: open /proc/PID/environ (mode 0400, owned by the
//     target's uid), and read files of a root target that belong to other
//     users, as the target itself can;
//   - NET_ADMIN: the nftables table of redirect rules, over netlink in the
//     target's network namespace;
//   - SETGID, SETUID: take on the target's filesystem IDs and groups
//     (setfsgid, setgroups, setfsuid) so the kernel judges its files as it
//     would judge the target;
//   - SYS_ADMIN: setns into the target's network namespace;
//   - SYS_PTRACE: open another user's /proc/PID/root and /proc/PID/ns/net
//     (ptrace_may_access).
var AgentCapabilities = []corev1.Capability{"DAC_OVERRIDE", "NET_ADMIN", "SETGID", "SETUID", "SYS_ADMIN", "SYS_PTRACE"}

// agentSecurity is the agent container's security context: root (file
// capabilities are not honoured without privilege escalation, and
// Kubernetes gives a non-root user no ambient capabilities, so as another
// user the agent would have none), the capabilities above and no others,
// no privilege escalation, a read-only root filesystem (the agent writes no
// file: it listens on TCP and keeps its tables in the kernel) and the
// runtime's default seccomp profile. Not privileged, and no SYS_RESOURCE
// (which some runtimes refuse).
func agentSecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsUser:                ptr(int64(0)),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: slices.Clone(AgentCapabilities)},
		AllowPrivilegeEscalation: ptr(false),
		ReadOnlyRootFilesystem:   ptr(true),
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// AgentDeadline bounds an agent Job's life (activeDeadlineSeconds), as a
// backstop should the agent fail to exit when idle: Kubernetes then ends
// it, and with it its rules. Sessions last a working day at most; one
// still running after 12 hours loses its agent and says so.
const AgentDeadline = 12 * time.Hour

// Default requests and limits of the agent's container, each replaced by
// agent.resources' value for the same resource. The agent idles at about
// 20 MiB and relays connections with small buffers.
var (
	defaultRequests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")}
	defaultLimits   = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("256Mi")}
)

// The agent's key reaches a Job's agent as a Secret volume mounted into the
// agent's container alone (secretName is the Job's own Secret, created
// with the Job as its owner; see agentkey.go).
const (
	keyVolume = "agent-key"
	keyDir    = "/var/run/remocal/agent"
	keyItem   = "key"
)

func agentJob(r *Resolved, ns, key string, o AgentOptions, secretName string) *batchv1.Job {
	// remocal's own labels win: agent.labels cannot make a Job (or a pod)
	// pass for another target's agent.
	labels := map[string]string{}
	for k, v := range o.Labels {
		labels[k] = v
	}
	labels[LabelApp], labels[LabelAgentFor] = AgentAppName, agentKey(key)
	delete(labels, LabelTarget)
	zero, ttl := int32(0), int32(60)
	spec := corev1.PodSpec{
		RestartPolicy:                 corev1.RestartPolicyNever,
		TerminationGracePeriodSeconds: ptr(int64(5)),
		ActiveDeadlineSeconds:         ptr(int64(AgentDeadline / time.Second)),
		Tolerations:                   tolerations(o.Tolerations),
		ImagePullSecrets:              pullSecrets(o.PullSecrets),
		AutomountServiceAccountToken:  ptr(false),
		Containers: []corev1.Container{{
			Name: "agent", Image: o.Image, ImagePullPolicy: o.PullPolicy,
			Command: AgentCommand, Args: append(agentArgs(o, jobTarget(r)...), "--secret-file", keyDir+"/"+keyItem),
			Env: nodeIPFromStatus, SecurityContext: agentSecurity(), Resources: resources(o.Resources),
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			VolumeMounts:             []corev1.VolumeMount{{Name: keyVolume, MountPath: keyDir, ReadOnly: true}},
		}},
		Volumes: []corev1.Volume{{Name: keyVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: secretName, DefaultMode: ptr(int32(0o400)), Items: []corev1.KeyToPath{{Key: keyItem, Path: keyItem}},
		}}}},
	}
	if r != nil {
		// Beside the target: on its node, seeing its processes.
		spec.NodeName = r.Pod.Spec.NodeName
		spec.HostPID = true
		labels[LabelTarget] = r.Pod.Name
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: agentJobName(key), Namespace: ns, Labels: labels, Annotations: o.Annotations},
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

// resources are the agent's requests and limits: agent.resources, and for
// CPU and memory the defaults where it sets nothing. A default never makes
// the user's values invalid: no default request above the user's limit,
// no default limit below the user's request.
func resources(r *config.Resources) corev1.ResourceRequirements {
	conv := func(m map[string]string) corev1.ResourceList {
		l := corev1.ResourceList{}
		for k, v := range m {
			if q, err := resource.ParseQuantity(v); err == nil {
				l[corev1.ResourceName(k)] = q
			}
		}
		return l
	}
	var req, lim corev1.ResourceList
	if r != nil {
		req, lim = conv(r.Requests), conv(r.Limits)
	} else {
		req, lim = corev1.ResourceList{}, corev1.ResourceList{}
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		userReq, hasReq := req[name]
		userLim, hasLim := lim[name]
		defReq, defLim := defaultRequests[name], defaultLimits[name]
		if !hasReq && (!hasLim || defReq.Cmp(userLim) <= 0) {
			req[name] = defReq
		}
		if !hasLim && (!hasReq || defLim.Cmp(userReq) >= 0) {
			lim[name] = defLim
		}
	}
	return corev1.ResourceRequirements{Requests: req, Limits: lim}
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
