package kube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/remocal/remocal/protocol/wire"
)

// Every agent holds a key that whoever created it made (wire/auth.go): the
// client proves it to the agent, and the agent to the client, in the
// handshake. The key lives in a Secret of its own:
//
//   - a Job's agent mounts it as a volume (readable only in the agent's
//     container, mode 0400). The client creates the Job first and then the
//     Secret, owned by the Job, so that Kubernetes deletes it with the Job
//     and a session that dies between the two leaves nothing that outlives
//     the Job; the kubelet keeps the pod waiting until the Secret exists,
//     which it does within one API call.
//   - an ephemeral agent cannot gain a volume, so it reads the key from an
//     environment variable filled from the Secret (secretKeyRef). The
//     Secret is created first, owned by the target pod, so it goes with the
//     pod, like the ephemeral container itself.
//
// The Secret's name is random and written in the agent's spec, so another
// session (the same user's next one, a teammate's) finds it from the
// agent it joins, and only if it may read Secrets in that namespace.

// ErrNotOurAgent says a pod that looks like an agent (its labels, a
// container named agent) was not created by remocal, or its agent cannot
// prove the key its creator gave it.
var ErrNotOurAgent = errors.New("not the agent remocal created")

// notOurAgent is the error a session gets for such a pod; nothing was
// sent to it.
func notOurAgent(ns, pod, why string) error {
	return fmt.Errorf("%w: the pod %s is not the agent remocal created; delete it or ask an administrator (kubectl -n %s delete pod %s): %s",
		ErrNotOurAgent, pod, ns, pod, why)
}

// keyEnv is the ephemeral agent's environment variable with its key.
const keyEnv = "REMOCAL_AGENT_KEY"

func newSecretName() string {
	b := make([]byte, 5)
	rand.Read(b)
	return "remocal-agent-key-" + hex.EncodeToString(b)
}

// createKeySecret creates a Secret holding a new key, owned by owner, and
// returns the key.
func createKeySecret(ctx context.Context, env *Env, ns, name string, owner metav1.OwnerReference, labels map[string]string) ([]byte, error) {
	key := wire.NewKey()
	if err := createAgentSecret(ctx, env, ns, name, owner, labels, map[string][]byte{keyItem: key}); err != nil {
		return nil, err
	}
	return key, nil
}

// createAgentSecret creates an agent's Secret with data, owned by owner.
func createAgentSecret(ctx context.Context, env *Env, ns, name string, owner metav1.OwnerReference, labels map[string]string, data map[string][]byte) error {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, OwnerReferences: []metav1.OwnerReference{owner}},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
		Immutable:  ptr(true),
	}
	if _, err := env.Client.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return apiError(err, "create", "secrets", ns, name)
	}
	return nil
}

// readKeySecret reads the key in Secret name, which must be owned by the
// object of UID owner (the agent's Job, or the ephemeral agent's pod): a
// Secret someone else made for the name does not count. It waits up to
// patience for a Secret that the agent's creator is about to make.
func readKeySecret(ctx context.Context, env *Env, ns, name string, owner types.UID, patience time.Duration) ([]byte, error) {
	data, err := readAgentSecret(ctx, env, ns, name, owner, patience)
	if err != nil {
		return nil, err
	}
	key, err := wire.ParseKey(data[keyItem])
	if err != nil {
		return nil, fmt.Errorf("the Secret %s/%s: %w", ns, name, err)
	}
	return key, nil
}

// readAgentSecret is readKeySecret's Secret, all of its data.
func readAgentSecret(ctx context.Context, env *Env, ns, name string, owner types.UID, patience time.Duration) (map[string][]byte, error) {
	deadline := time.Now().Add(patience)
	backoff := 20 * time.Millisecond
	for {
		s, err := env.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			if !slices.ContainsFunc(s.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == owner }) {
				return nil, mismatch(fmt.Sprintf("the Secret %s/%s holding the agent's key does not belong to the agent", ns, name))
			}
			return s.Data, nil
		case !apierrors.IsNotFound(err):
			return nil, apiError(err, "get", "secrets", ns, name)
		case time.Now().After(deadline):
			return nil, errKeyMissing
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff): // its creator making it
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// errKeyMissing: an agent's Secret does not exist (its creator died
// before making it, or someone deleted it).
var errKeyMissing = mismatch("the agent's key Secret does not exist")

// jobSecret is the name of the Secret a Job's pods mount the key from.
func jobSecret(j *batchv1.Job) string {
	for _, v := range j.Spec.Template.Spec.Volumes {
		if v.Name == keyVolume && v.Secret != nil {
			return v.Secret.SecretName
		}
	}
	return ""
}

// isAgentJob reports whether j is an agent Job as remocal makes them: its
// one container runs the agent command with the key mounted. A Job of the
// agent's name that someone else made is not joined.
func isAgentJob(j *batchv1.Job) bool {
	spec := j.Spec.Template.Spec
	return len(spec.Containers) == 1 && len(spec.InitContainers) == 0 && spec.Containers[0].Name == "agent" &&
		slices.Equal(spec.Containers[0].Command, AgentCommand) && jobSecret(j) != ""
}

// mismatch says why something is not the agent remocal created (as
// opposed to an API error on the way to finding out).
type mismatch string

func (m mismatch) Error() string { return string(m) }

// podOfJob checks that pod belongs to the agent Job named name (its
// controller by UID) and runs that Job's agent, and returns the Job.
func podOfJob(ctx context.Context, env *Env, pod *corev1.Pod, name string) (*batchv1.Job, error) {
	owner := metav1.GetControllerOf(pod)
	if owner == nil || owner.Kind != "Job" || owner.Name != name {
		return nil, mismatch("it is not a pod of the agent Job " + name)
	}
	j, err := env.Client.BatchV1().Jobs(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, mismatch("the agent Job " + name + " it names does not exist")
	}
	if err != nil {
		return nil, apiError(err, "get", "jobs.batch", pod.Namespace, name)
	}
	if j.UID != owner.UID || !isAgentJob(j) {
		return nil, mismatch("it is not a pod of the agent Job " + name)
	}
	spec, tmpl := pod.Spec, j.Spec.Template.Spec
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 || spec.Containers[0].Image != tmpl.Containers[0].Image ||
		!slices.Equal(spec.Containers[0].Command, AgentCommand) || !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool {
		return v.Secret != nil && v.Secret.SecretName == jobSecret(j)
	}) {
		return nil, mismatch("its containers are not those of the agent Job " + name)
	}
	return j, nil
}
