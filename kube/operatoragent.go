package kube

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/remocal/remocal/internal/agenttls"
	"github.com/remocal/remocal/protocol/wire"
)

// The operator's agents (issue 10): one per target pod, in the operator's
// namespace, reached by the operator over the pod network. They differ
// from a client's agent in how they are reached: a client's agent listens
// on its pod's loopback behind a port-forward; an operator's agent listens
// on its pod's address with TLS, its certificate made by the operator and
// pinned when it dials (internal/agenttls), the key proof inside. The
// certificate and its private key are in the agent's Secret beside the
// key, mounted into the agent's container alone.

// OperatorAgentPort is where an operator's agent listens on its pod's
// address: the port of every agent's TLS listener (AgentTLSPort).
const OperatorAgentPort = AgentTLSPort

// Items of an agent's Secret besides the key: its TLS identity.
const (
	tlsCertItem = "tls.crt"
	tlsKeyItem  = "tls.key"
)

// LabelOperator marks the Jobs and pods of the operator's agents.
const LabelOperator = "remocal.dev/operator-agent"

// operatorAgentKey names the operator's agent of a container: not the
// name of a client's agent of the same container, which the operator
// neither joins nor disturbs.
func operatorAgentKey(r *Resolved) string { return "operator/" + r.ContainerID }

// operatorAgentJob is agentJob for the operator: listening on every
// address of its own pod (its pod IP; the pod has no other network) with
// TLS, the certificate and key mounted from secretName with the key.
func operatorAgentJob(r *Resolved, ns string, o AgentOptions, secretName string) *batchv1.Job {
	job := agentJob(r, ns, operatorAgentKey(r), o, secretName)
	job.Labels[LabelOperator] = "true"
	job.Spec.Template.Labels[LabelOperator] = "true"
	c := &job.Spec.Template.Spec.Containers[0]
	listen := fmt.Sprintf("tcp::%d", OperatorAgentPort)
	for i := 0; i+1 < len(c.Args); i++ {
		if c.Args[i] == "--listen" {
			c.Args[i+1] = listen
		}
	}
	withTLS(&job.Spec.Template.Spec)
	return job
}

// operatorSecrets is the data of a new operator agent's Secret: a key and
// a fresh TLS identity; a client's agent gets the same (direct.go).
func operatorSecrets(name string) (map[string][]byte, error) {
	cert, key, err := agenttls.New(name)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{keyItem: wire.NewKey(), tlsCertItem: cert, tlsKeyItem: key}, nil
}

// isOperatorAgentJob reports whether j is an operator's agent Job as
// EnsureOperatorAgent makes them.
func isOperatorAgentJob(j *batchv1.Job) bool {
	return isAgentJob(j) && j.Labels[LabelOperator] == "true" &&
		slices.Contains(j.Spec.Template.Spec.Containers[0].Args, "--tls-cert-file")
}

// EnsureOperatorAgent returns the operator's agent of r's container,
// starting its Job in ns (the operator's namespace) on the pod's node if
// none runs, with its address on the pod network, its key and its
// certificate to pin.
func EnsureOperatorAgent(ctx context.Context, env *Env, r *Resolved, ns string, o AgentOptions, progress func(string)) (*Agent, error) {
	name := agentJobName(operatorAgentKey(r))
	a, err := ensureFlavoredJob(ctx, env, ns, name, jobFlavor{
		build:   func(secret string) *batchv1.Job { return operatorAgentJob(r, ns, o, secret) },
		secrets: func() (map[string][]byte, error) { return operatorSecrets(name) },
		read: func(ctx context.Context, j *batchv1.Job) (agentCreds, error) {
			if !isOperatorAgentJob(j) {
				return agentCreds{}, mismatch(fmt.Sprintf("the Job %s/%s is not an operator's agent Job remocal made", j.Namespace, j.Name))
			}
			data, err := readAgentSecret(ctx, env, j.Namespace, jobSecret(j), j.UID, 10*time.Second)
			if err != nil {
				return agentCreds{}, err
			}
			creds := credsOf(data)
			if _, err := wire.ParseKey(creds.key); err != nil || creds.cert == nil {
				return agentCreds{}, mismatch(fmt.Sprintf("the Secret of the Job %s/%s lacks the agent's key or certificate", j.Namespace, j.Name))
			}
			return creds, nil
		},
	}, o, progress)
	if err != nil {
		return nil, err
	}
	pod, err := env.Client.CoreV1().Pods(ns).Get(ctx, a.Pod, metav1.GetOptions{})
	if err != nil {
		return nil, apiError(err, "get", "pods", ns, a.Pod)
	}
	if pod.Status.PodIP == "" {
		return nil, fmt.Errorf("the agent's pod %s/%s runs but has no IP address yet", ns, a.Pod)
	}
	a.PodIP, a.Port = pod.Status.PodIP, OperatorAgentPort
	return a, nil
}

// Pods returns the selector of the named object's pods and how to name
// them in messages; a nil selector for a pod, which is its own.
func (w Workload) Pods(ctx context.Context, cs kubernetes.Interface, ns, name string) (labels.Selector, string, error) {
	if w.pods == nil {
		return nil, "pod " + name, nil
	}
	return w.pods(ctx, cs, ns, name)
}

// ResolvePod is the container a session uses in pod: container, or the
// first application container when empty. The pod must be running.
func ResolvePod(pod *corev1.Pod, container string) (*Resolved, error) {
	ref := "pod/" + pod.Name
	if container != "" {
		ref += "/" + container
	}
	return pick(ref, pod.Namespace, []corev1.Pod{*pod}, container, "")
}

// PodReady reports whether pod serves: running, Ready, not terminating.
func PodReady(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// AgentAddress is host:port of an operator's agent.
func (a *Agent) AgentAddress() string {
	return net.JoinHostPort(a.PodIP, strconv.Itoa(a.Port))
}
