package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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
		var key []byte
		if name != "" {
			// Another session's agent: its key is in the Secret its
			// environment names, which must belong to this pod.
			if key, err = ephemeralKey(ctx, env, pod, name); err != nil {
				var why mismatch
				if errors.As(err, &why) {
					return nil, fmt.Errorf("%w: the ephemeral container %s of pod %s/%s is not the agent remocal created (%s); it stays until the pod is replaced (kubectl -n %s rollout restart, or delete the pod)",
						ErrNotOurAgent, name, r.Namespace, pod.Name, why, r.Namespace)
				}
				return nil, err
			}
		} else {
			name = fmt.Sprintf("%s%d", ephemeralPrefix, ours+1)
			progress("adding the agent to pod " + pod.Name + " as ephemeral container " + name)
			// The key first, owned by the pod (it goes with it, as the
			// ephemeral container does), then the agent that reads it.
			secret := newSecretName()
			owner := metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}
			if key, err = createKeySecret(ctx, env, r.Namespace, secret, owner, map[string]string{LabelApp: AgentAppName}); err != nil {
				return nil, err
			}
			updated := pod.DeepCopy()
			updated.Spec.EphemeralContainers = append(updated.Spec.EphemeralContainers, corev1.EphemeralContainer{
				TargetContainerName: r.Container,
				EphemeralContainerCommon: corev1.EphemeralContainerCommon{
					Name: name, Image: o.Image, ImagePullPolicy: o.PullPolicy, SecurityContext: agentSecurity(),
					Command: AgentCommand, TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
					Env: append(slices.Clone(nodeIPFromStatus), corev1.EnvVar{Name: keyEnv,
						ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
							LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: keyItem}}}),
					Args: append(agentArgs(o, "--target-pid", "1", "--target-name", r.Ref, nodeIPArg), "--secret-env", keyEnv),
				},
			})
			_, err := pods.UpdateEphemeralContainers(ctx, pod.Name, updated, metav1.UpdateOptions{})
			if err != nil {
				env.Client.CoreV1().Secrets(r.Namespace).Delete(context.WithoutCancel(ctx), secret, metav1.DeleteOptions{})
			}
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
		return &Agent{Namespace: r.Namespace, Pod: pod.Name, Container: name, Port: AgentPort, Reused: pending != "", Key: key}, nil
	}
	return nil, fmt.Errorf("pod %s/%s kept changing while adding the agent; try again", r.Namespace, r.Pod.Name)
}

// ephemeralKey returns the key of the ephemeral agent name in pod.
func ephemeralKey(ctx context.Context, env *Env, pod *corev1.Pod, name string) ([]byte, error) {
	for _, ec := range pod.Spec.EphemeralContainers {
		if ec.Name != name || !slices.Equal(ec.Command, AgentCommand) {
			continue
		}
		for _, e := range ec.Env {
			if e.Name == keyEnv && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Key == keyItem {
				return readKeySecret(ctx, env, pod.Namespace, e.ValueFrom.SecretKeyRef.Name, pod.UID, 10*time.Second)
			}
		}
	}
	return nil, mismatch("it has no key (an agent of an older remocal, or not remocal's)")
}

// ephemeralPrefix names the agents' ephemeral containers.
const ephemeralPrefix = "remocal-agent-"
