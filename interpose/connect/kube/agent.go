package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/remocal/remocal/protocol/config"
)

// AgentPort is where an agent in the cluster listens, on its pod's
// loopback only: nothing but a port-forward through the apiserver and
// kubelet (which checks the user's pods/portforward permission) reaches it.
const AgentPort = 47113

// Labels on agent pods.
const (
	LabelApp      = "app.kubernetes.io/name"
	LabelAgentFor = "remocal.dev/agent-for"
	LabelTarget   = "remocal.dev/target-pod"
)

// AgentOptions describe the agent's pod (protocol/config's agent section).
type AgentOptions struct {
	Image          string
	Namespace      string
	PullPolicy     corev1.PullPolicy
	PullSecrets    []string
	Tolerations    []config.Toleration
	Resources      *config.Resources
	Labels         map[string]string
	Annotations    map[string]string
	StartupTimeout time.Duration
	IdleTTL        time.Duration
	Ephemeral      bool
}

// Agent is a running agent to port-forward to.
type Agent struct {
	Namespace, Pod string
	Container      string // the agent's container in Pod
	Port           int
	Reused         bool
	// job is the Job this session created, to remove if the agent turns
	// out unreachable; nil when the agent was joined or reused.
	job *batchv1.Job
}

// agentKey identifies the agent of a container (or a namespace's targetless
// agent) in a label value.
func agentKey(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:40]
}

// EnsureAgent returns the agent serving r's container, starting a Job on the
// pod's node if none runs. Sessions on the same container share it, so it
// sees every subscription and refuses conflicting ones. A nil r asks for a
// targetless agent in namespace ns.
func EnsureAgent(ctx context.Context, env *Env, r *Resolved, ns string, o AgentOptions, progress func(string)) (*Agent, error) {
	if o.Namespace != "" {
		ns = o.Namespace
	}
	key := "targetless/" + ns
	if r != nil {
		key = r.ContainerID
	}
	if r != nil && o.Ephemeral {
		return ensureEphemeral(ctx, env, r, o, progress)
	}
	selector := fmt.Sprintf("%s=%s", LabelAgentFor, agentKey(key))
	pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, apiError(err, "list", "pods", ns, "")
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && containerRunning(p.Status.ContainerStatuses, "agent") {
			return &Agent{Namespace: ns, Pod: p.Name, Container: "agent", Port: AgentPort, Reused: true}, nil
		}
	}
	return ensureJob(ctx, env, r, ns, key, o, progress)
}

// ensureJob starts the agent's Job, or joins one that is starting: the
// Job's name is derived from the container, so two sessions starting at
// once create one agent, not two agents fighting over the same port. A
// Job left by an agent that has exited is replaced.
func ensureJob(ctx context.Context, env *Env, r *Resolved, ns, key string, o AgentOptions, progress func(string)) (*Agent, error) {
	jobs := env.Client.BatchV1().Jobs(ns)
	job := agentJob(r, ns, key, o)
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		created := true
		current, err := jobs.Create(ctx, job, metav1.CreateOptions{})
		switch {
		case err == nil:
			progress("starting the agent in the cluster")
		case apierrors.IsAlreadyExists(err):
			existing, err := jobs.Get(ctx, job.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				continue // deleted meanwhile: create it
			}
			if err != nil {
				return nil, apiError(err, "get", "jobs.batch", ns, job.Name)
			}
			if existing.DeletionTimestamp != nil || jobFinished(existing) {
				if err := removeJob(ctx, env, ns, existing); err != nil {
					return nil, err
				}
				if err := waitJobGone(ctx, env, ns, existing); err != nil {
					return nil, err
				}
				continue
			}
			created, current = false, existing
			progress("waiting for the agent another session is starting")
		default:
			return nil, apiError(err, "create", "jobs.batch", ns, job.Name)
		}
		// By the Job's UID, not its name: the pod of a finished Job of the
		// same name may still be terminating, and is not this agent.
		pod, err := waitAgentPod(ctx, env, ns, metav1.ListOptions{LabelSelector: batchv1.ControllerUidLabel + "=" + string(current.UID)}, "agent", o.StartupTimeout, progress)
		if err == nil {
			a := &Agent{Namespace: ns, Pod: pod, Container: "agent", Port: AgentPort}
			if created {
				a.job = current
			}
			return a, nil
		}
		if created {
			// Leave nothing behind: the Job's pod would keep a failed agent.
			// Only this Job (by UID): another session may own the name by now.
			removeJob(context.WithoutCancel(ctx), env, ns, current)
			return nil, err
		}
		if ctx.Err() != nil {
			// The Job belongs to the session that started it.
			return nil, err
		}
		// The other session's agent failed or was exiting (idle) as we
		// joined: start over.
		lastErr = err
	}
	return nil, fmt.Errorf("could not start the agent's Job %s/%s: %w", ns, job.Name, lastErr)
}

// waitJobGone waits until a deleted Job's name is free again.
func waitJobGone(ctx context.Context, env *Env, ns string, j *batchv1.Job) error {
	backoff := 50 * time.Millisecond
	deadline := time.Now().Add(30 * time.Second)
	for {
		cur, err := env.Client.BatchV1().Jobs(ns).Get(ctx, j.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && cur.UID != j.UID) {
			return nil
		}
		if err != nil {
			return apiError(err, "get", "jobs.batch", ns, j.Name)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the finished agent Job %s/%s is still being deleted after 30s; delete it (kubectl -n %s delete job %s) and try again", ns, j.Name, ns, j.Name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff): // the apiserver finishing a deletion
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func jobFinished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return j.Status.Succeeded+j.Status.Failed > 0 && j.Status.Active == 0
}

// removeJob deletes a Job and its pods; only that Job (by UID), should
// another session have replaced it meanwhile.
func removeJob(ctx context.Context, env *Env, ns string, j *batchv1.Job) error {
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	if j.UID != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &j.UID}
	}
	err := env.Client.BatchV1().Jobs(ns).Delete(ctx, j.Name, opts)
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return apiError(err, "delete", "jobs.batch", ns, j.Name)
	}
	return nil
}

// AgentCommand is how an agent image is started: remocal's binary at
// /remocal (what `make images` builds). An image of one's own must keep
// that path.
var AgentCommand = []string{"/remocal", "agent"}

func agentArgs(r *Resolved, o AgentOptions) []string {
	args := []string{"--listen", fmt.Sprintf("tcp:127.0.0.1:%d", AgentPort), "--idle-ttl", o.IdleTTL.String()}
	if r == nil {
		return append(args, "--targetless")
	}
	return append(args, "--container-id", r.ContainerID, "--target-name", r.Ref, nodeIPArg)
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
	labels := map[string]string{LabelApp: "remocal-agent", LabelAgentFor: agentKey(key)}
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
			Command: AgentCommand, Args: agentArgs(r, o), Env: nodeIPFromStatus, SecurityContext: agentSecurity(), Resources: resources(o.Resources),
		}},
	}
	if r != nil {
		// Beside the target: on its node, seeing its processes.
		spec.NodeName = r.Pod.Spec.NodeName
		spec.HostPID = true
		labels[LabelTarget] = r.Pod.Name
		spec.Containers[0].SecurityContext = agentSecurity()
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

// waitAgentPod watches the pods opts selects until the agent container
// runs, and explains every way it can fail to: an image that cannot be
// pulled (the kubelet's message), a crash (its log), or no progress at all
// (the pod's events).
func waitAgentPod(ctx context.Context, env *Env, ns string, opts metav1.ListOptions, container string, timeout time.Duration, progress func(string)) (string, error) {
	if timeout <= 0 {
		timeout = time.Minute
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pods := env.Client.CoreV1().Pods(ns)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector, o.FieldSelector = opts.LabelSelector, opts.FieldSelector
			return pods.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector, o.FieldSelector = opts.LabelSelector, opts.FieldSelector
			return pods.Watch(ctx, o)
		},
	}
	var last *corev1.Pod
	var running string
	reported := ""
	_, err := watchtools.UntilWithSync(wctx, lw, &corev1.Pod{}, nil, func(ev watch.Event) (bool, error) {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok || ev.Type == watch.Deleted {
			return false, nil
		}
		last = p
		if p.Status.Phase == corev1.PodFailed {
			// Rejected by the kubelet before any container ran (not
			// enough CPU or memory on the node, for example).
			return false, fmt.Errorf("the agent pod %s/%s failed on node %s: %s: %s; adjust agent.resources or agent.tolerations",
				p.Namespace, p.Name, p.Spec.NodeName, p.Status.Reason, p.Status.Message)
		}
		for _, s := range append(p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses...) {
			if s.Name != container {
				continue
			}
			switch {
			case s.State.Running != nil:
				running = p.Name
				return true, nil
			case s.State.Waiting != nil && isPullFailure(s.State.Waiting.Reason):
				return false, fmt.Errorf("the agent image %s cannot be pulled on node %s (%s: %s); set agent.image to an image the node can pull (make images writes it as an OCI archive to push to your registry)",
					s.Image, p.Spec.NodeName, s.State.Waiting.Reason, s.State.Waiting.Message)
			case s.State.Terminated != nil:
				return false, fmt.Errorf("the agent exited at start (%s, exit %d): %s", s.State.Terminated.Reason, s.State.Terminated.ExitCode, tail(s.State.Terminated.Message))
			case s.State.Waiting != nil && s.State.Waiting.Reason != reported:
				reported = s.State.Waiting.Reason
				progress("agent pod " + p.Name + ": " + reported)
			}
		}
		return false, nil
	})
	switch {
	case running != "":
		return running, nil
	case ctx.Err() != nil:
		return "", ctx.Err()
	case errors.Is(err, wait.ErrWaitTimeout) || wctx.Err() != nil:
		return "", timeoutError(ctx, env, ns, last, timeout)
	case err != nil:
		var se *apierrors.StatusError
		if errors.As(err, &se) {
			return "", apiError(err, "watch", "pods", ns, "")
		}
		return "", err
	}
	return "", timeoutError(ctx, env, ns, last, timeout)
}

func isPullFailure(reason string) bool {
	switch reason {
	case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
		return true
	}
	return false
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 400 {
		return "…" + s[len(s)-400:]
	}
	return s
}

func timeoutError(ctx context.Context, env *Env, ns string, pod *corev1.Pod, timeout time.Duration) error {
	if pod == nil {
		return fmt.Errorf("no agent pod appeared in namespace %s within %v (check the Job's events: kubectl -n %s describe jobs -l %s=remocal-agent)", ns, timeout, ns, LabelApp)
	}
	evs, err := env.Client.CoreV1().Events(ns).List(context.WithoutCancel(ctx), metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod.Name})
	var lines []string
	if err == nil {
		sort.Slice(evs.Items, func(i, j int) bool { return evs.Items[i].LastTimestamp.Before(&evs.Items[j].LastTimestamp) })
		for _, e := range evs.Items {
			lines = append(lines, fmt.Sprintf("%s %s: %s", e.Type, e.Reason, e.Message))
		}
	}
	if len(lines) == 0 {
		lines = []string{"(no events)"}
	}
	return fmt.Errorf("the agent pod %s/%s did not start within %v (phase %s); its events:\n  %s\nraise agent.startupTimeout if the cluster is just slow",
		ns, pod.Name, timeout, pod.Status.Phase, strings.Join(lines, "\n  "))
}

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
					Command: AgentCommand, Env: nodeIPFromStatus,
					Args: []string{"--target-pid", "1", "--target-name", r.Ref, "--listen", fmt.Sprintf("tcp:127.0.0.1:%d", AgentPort), "--idle-ttl", o.IdleTTL.String(), nodeIPArg},
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
		if _, err := waitAgentPod(ctx, env, r.Namespace, metav1.ListOptions{FieldSelector: "metadata.name=" + pod.Name}, name, o.StartupTimeout, progress); err != nil {
			return nil, err
		}
		return &Agent{Namespace: r.Namespace, Pod: pod.Name, Container: name, Port: AgentPort, Reused: pending != ""}, nil
	}
	return nil, fmt.Errorf("pod %s/%s kept changing while adding the agent; try again", r.Namespace, r.Pod.Name)
}

// ephemeralPrefix names the agents' ephemeral containers.
const ephemeralPrefix = "remocal-agent-"
