package kube

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ensureEphemeral runs the agent as an ephemeral container in the target's
// pod, sharing the target container's process namespace (its PID 1 is the
// target) and the pod's network. Ephemeral containers cannot be removed, so
// each agent that exited leaves one behind and the next gets the next
// number. Concurrent sessions meet at the pod's resourceVersion: the loser
// of an update sees the winner's container and waits for it.
func ensureEphemeral(ctx context.Context, env *Env, r *Resolved, o AgentOptions, progress func(string)) (*Agent, error) {
	pods := env.Client.CoreV1().Pods(r.Namespace)
	for attempt := 0; attempt < 5; attempt++ {
		pod, err := pods.Get(ctx, r.Pod.Name, metav1.GetOptions{})
		if err != nil {
			return nil, apiError(err, "get", "pods", r.Namespace, r.Pod.Name)
		}
		ours := 0
		pending := ""
		for _, ec := range pod.Spec.EphemeralContainers {
			if strings.HasPrefix(ec.Name, ephemeralPrefix) {
				ours++
				pending = ec.Name // the newest, unless its status says it ended
			}
		}
		for _, st := range pod.Status.EphemeralContainerStatuses {
			if st.Name == pending && st.State.Terminated != nil {
				pending = ""
			}
		}
		name := pending
		if name == "" {
			name = fmt.Sprintf("%s%d", ephemeralPrefix, ours+1)
			progress("adding the agent to pod " + pod.Name + " as ephemeral container " + name)
			updated := pod.DeepCopy()
			updated.Spec.EphemeralContainers = append(updated.Spec.EphemeralContainers, corev1.EphemeralContainer{
				TargetContainerName: r.Container,
				EphemeralContainerCommon: corev1.EphemeralContainerCommon{
					Name: name, Image: o.Image, ImagePullPolicy: o.PullPolicy, SecurityContext: agentSecurity(),
					Command: AgentCommand, Env: nodeIPFromStatus, TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
					Args: agentArgs(o, "--target-pid", "1", "--target-name", r.Ref, nodeIPArg),
				},
			})
			_, err := pods.UpdateEphemeralContainers(ctx, pod.Name, updated, metav1.UpdateOptions{})
			if apierrors.IsConflict(err) {
				continue // someone else changed the pod; look again
			}
			if err != nil {
				return nil, apiError(err, "update", "pods/ephemeralcontainers", r.Namespace, pod.Name)
			}
		}
		if _, err := waitAgentPod(ctx, env, r.Namespace, metav1.ListOptions{FieldSelector: "metadata.name=" + pod.Name}, name, nil, o.StartupTimeout, progress); err != nil {
			return nil, err
		}
		return &Agent{Namespace: r.Namespace, Pod: pod.Name, Container: name, Port: AgentPort, Reused: pending != ""}, nil
	}
	return nil, fmt.Errorf("pod %s/%s kept changing while adding the agent; try again", r.Namespace, r.Pod.Name)
}

// ephemeralPrefix names the agents' ephemeral containers.
const ephemeralPrefix = "remocal-agent-"
