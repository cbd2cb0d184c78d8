package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remocal/remocal/protocol/config"
)

// AgentPort is where an agent in the cluster listens, on its pod's
// loopback only: nothing but a port-forward through the apiserver and
// kubelet (which checks the user's pods/portforward permission) reaches it.
const AgentPort = 47113

// Labels on agent pods and Jobs: LabelApp is AgentAppName on every one.
const (
	AgentAppName  = "remocal-agent"
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
	// Key is the agent's secret (agentkey.go): the agent must prove it.
	Key []byte
	// TLSCert is the certificate (PEM) the agent serves TLS with on its
	// pod's address, to pin, and PodIP that address. An operator's agent
	// serves TLS on Port; a client's agent on DirectPort (the direct
	// transport, direct.go), 0 when it has no such listener (an
	// ephemeral agent, a Job of an older remocal).
	TLSCert    []byte
	PodIP      string
	DirectPort int
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
			// Labels are anyone's to set: only a pod of remocal's Job for
			// this container, holding that Job's key, is the agent.
			j, err := podOfJob(ctx, env, &p, agentJobName(key))
			var creds agentCreds
			if err == nil {
				creds, err = jobCreds(ctx, env, j)
			}
			var why mismatch
			if errors.As(err, &why) {
				return nil, notOurAgent(ns, p.Name, string(why))
			}
			if err != nil {
				return nil, err
			}
			a := &Agent{Namespace: ns, Pod: p.Name, Container: "agent", Port: AgentPort, Reused: true, Key: creds.key, TLSCert: creds.cert, PodIP: p.Status.PodIP}
			if creds.cert != nil {
				a.DirectPort = AgentTLSPort
			}
			return a, nil
		}
	}
	return ensureJob(ctx, env, r, ns, key, o, progress)
}

// ensureJob starts the agent's Job, or joins one that is starting: the
// Job's name is derived from the container, so two sessions starting at
// once create one agent, not two agents fighting over the same port. A
// Job left by an agent that has exited is replaced.
func ensureJob(ctx context.Context, env *Env, r *Resolved, ns, key string, o AgentOptions, progress func(string)) (*Agent, error) {
	name := agentJobName(key)
	a, err := ensureFlavoredJob(ctx, env, ns, name, jobFlavor{
		build:   func(secret string) *batchv1.Job { return clientAgentJob(r, ns, key, o, secret) },
		secrets: func() (map[string][]byte, error) { return operatorSecrets(name) },
		read:    func(ctx context.Context, j *batchv1.Job) (agentCreds, error) { return jobCreds(ctx, env, j) },
	}, o, progress)
	if err == nil && a.TLSCert != nil {
		a.DirectPort = AgentTLSPort
	}
	return a, err
}

// jobFlavor is what differs between the agent Jobs a client makes (a key,
// loopback, port-forwarded) and those the operator makes (a key and a TLS
// identity, on the pod IP): the Job, the data of its new Secret, and
// reading the credentials of an existing one.
type jobFlavor struct {
	build   func(secretName string) *batchv1.Job
	secrets func() (map[string][]byte, error)
	read    func(ctx context.Context, j *batchv1.Job) (agentCreds, error)
}

// agentCreds are an agent's credentials from its Secret.
type agentCreds struct {
	key []byte
	// cert is the operator's agent's TLS certificate (PEM), to pin.
	cert []byte
}

func credsOf(data map[string][]byte) agentCreds {
	return agentCreds{key: data[keyItem], cert: data[tlsCertItem]}
}

// ensureFlavoredJob starts the Job named name or joins it (see ensureJob).
func ensureFlavoredJob(ctx context.Context, env *Env, ns, name string, fl jobFlavor, o AgentOptions, progress func(string)) (*Agent, error) {
	jobs := env.Client.BatchV1().Jobs(ns)
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		job := fl.build(newSecretName())
		created := true
		var creds agentCreds
		current, err := jobs.Create(ctx, job, metav1.CreateOptions{})
		switch {
		case err == nil:
			progress("starting the agent in the cluster")
			owner := metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: current.Name, UID: current.UID}
			data, err := fl.secrets()
			if err == nil {
				err = createAgentSecret(ctx, env, ns, jobSecret(current), owner, map[string]string{LabelApp: AgentAppName}, data)
			}
			if err != nil {
				removeJob(context.WithoutCancel(ctx), env, ns, current)
				return nil, err
			}
			creds = credsOf(data)
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
			creds, err = fl.read(ctx, existing)
			if errors.Is(err, errKeyMissing) {
				// Its creator went away before giving it a key: its pod
				// can never start.
				if err := removeJob(ctx, env, ns, existing); err != nil {
					return nil, err
				}
				if err := waitJobGone(ctx, env, ns, existing); err != nil {
					return nil, err
				}
				continue
			}
			var why mismatch
			if errors.As(err, &why) {
				return nil, fmt.Errorf("%w: the Job %s/%s is not the agent remocal created; delete it or ask an administrator (kubectl -n %s delete job %s): %s",
					ErrNotOurAgent, ns, existing.Name, ns, existing.Name, why)
			}
			if err != nil {
				return nil, err
			}
			created, current = false, existing
			progress("waiting for the agent another session is starting")
		default:
			return nil, apiError(err, "create", "jobs.batch", ns, job.Name)
		}
		// By the Job's UID, not its name: the pod of a finished Job of the
		// same name may still be terminating, and is not this agent.
		pod, err := waitAgentPod(ctx, env, ns, metav1.ListOptions{LabelSelector: batchv1.ControllerUidLabel + "=" + string(current.UID)}, "agent", current, o.StartupTimeout, progress)
		if err == nil {
			a := &Agent{Namespace: ns, Pod: pod.Name, Container: "agent", Port: AgentPort, Key: creds.key, TLSCert: creds.cert, PodIP: pod.Status.PodIP}
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
	return nil, fmt.Errorf("could not start the agent's Job %s/%s: %w", ns, name, lastErr)
}

// agentJobName is the name of the Job of the agent for key (a container ID,
// or a namespace's targetless agent).
func agentJobName(key string) string { return "remocal-agent-" + agentKey(key)[:16] }

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
