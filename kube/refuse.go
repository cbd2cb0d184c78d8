package kube

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remocal/remocal/protocol/config"
)

// ErrTargetRefused says remocal will not run a session in the target:
// working there risks more than the target (the cluster's own components,
// a node, a namespace an administrator closed). The message says why and
// how to allow it where that is the user's call.
var ErrTargetRefused = errors.New("target refused")

// LabelNamespaceTargets on a namespace, set to "deny" by an administrator,
// refuses every pod in it as a target; users cannot allow it.
const LabelNamespaceTargets = "remocal.dev/targets"

// Labels that mark a control-plane node (the second is the name before
// Kubernetes 1.20, still set by some installers).
var controlPlaneLabels = []string{"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"}

// mirrorAnnotation marks the API's copy of a static pod: a pod the kubelet
// runs from a file on its node (the control plane's, often).
const mirrorAnnotation = corev1.MirrorPodAnnotationKey

// checkTarget refuses dangerous targets unless allow (the configuration's
// kubernetes.allowTargets) allows them:
//   - hostNetwork pods, always: their network namespace is the node's, so
//     the agent's redirect rules and outgoing connections would act on the
//     node (and the redirect rule would also need `fib daddr type local`);
//   - pods in kube-system (allow.KubeSystem);
//   - static pods, whose API object is a mirror (allow.StaticPods);
//   - pods on control-plane nodes (allow.ControlPlane);
//   - pods in a namespace labelled remocal.dev/targets=deny, always.
//
// The namespace's and node's labels are read when the account may; when it
// may not, those two checks are skipped (they are a safety net for users,
// not access control: RBAC and Pod Security admission are).
func checkTarget(ctx context.Context, env *Env, r *Resolved, allow config.AllowTargets) error {
	pod := r.Pod
	name := fmt.Sprintf("pod %s/%s", r.Namespace, pod.Name)
	allowHint := func(key string) string {
		return fmt.Sprintf(`to target it anyway, set "kubernetes": {"allowTargets": {%q: true}} in .remocal/config.json`, key)
	}
	if pod.Spec.HostNetwork {
		return fmt.Errorf("%w: %s uses the node's network (hostNetwork): its network namespace is the node's, where the agent's redirect rules and connections would act on the node itself; remocal does not run sessions in hostNetwork pods, target a pod with a network of its own",
			ErrTargetRefused, name)
	}
	if r.Namespace == metav1.NamespaceSystem && !allow.KubeSystem {
		return fmt.Errorf("%w: %s is in namespace kube-system, where the cluster's own components run and a steal or a mistake affects every workload; %s",
			ErrTargetRefused, name, allowHint("kubeSystem"))
	}
	if _, mirror := pod.Annotations[mirrorAnnotation]; mirror && !allow.StaticPods {
		return fmt.Errorf("%w: %s is a static pod (run by the kubelet of node %s from a file, often a control-plane component); %s",
			ErrTargetRefused, name, pod.Spec.NodeName, allowHint("staticPods"))
	}
	if ns, err := env.Client.CoreV1().Namespaces().Get(ctx, r.Namespace, metav1.GetOptions{}); err == nil && ns.Labels[LabelNamespaceTargets] == "deny" {
		return fmt.Errorf("%w: namespace %s is closed to remocal sessions by its label %s=deny; ask the cluster's administrators to remove the label (kubectl label namespace %s %s-) if sessions there are fine",
			ErrTargetRefused, r.Namespace, LabelNamespaceTargets, r.Namespace, LabelNamespaceTargets)
	}
	if pod.Spec.NodeName != "" && !allow.ControlPlane {
		node, err := env.Client.CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
		if err == nil {
			for _, l := range controlPlaneLabels {
				if _, ok := node.Labels[l]; ok {
					return fmt.Errorf("%w: %s runs on node %s, a control-plane node (label %s), where the agent (root, with hostPID) would run beside the cluster's control plane; %s",
						ErrTargetRefused, name, node.Name, l, allowHint("controlPlane"))
				}
			}
		}
	}
	return nil
}
