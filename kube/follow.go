package kube

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remocal/remocal/internal/agentclient"
)

// A target's container does not live forever: a rollout replaces its pod,
// a crash restarts it. Its agent ends with it (the agent serves one
// process). A session then follows the target to the container its
// reference resolves to now, with a new agent there, rather than going on
// without a target. An agent that ended while its container still runs
// (someone deleted the agent) is not replaced: that is the user's or an
// administrator's decision to respect.

// followPoll is the pause between looks at a target that is not running
// again yet; a new pod takes seconds.
const followPoll = 500 * time.Millisecond

// targetMoved reports whether the resolved container is gone or replaced,
// and how, as the user should hear it.
func targetMoved(ctx context.Context, env *Env, r *Resolved) (string, bool) {
	pod, err := env.Client.CoreV1().Pods(r.Namespace).Get(ctx, r.Pod.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("the target pod %s/%s was deleted", r.Namespace, r.Pod.Name), true
	case err != nil:
		return "", false
	case pod.UID != r.Pod.UID:
		return fmt.Sprintf("the target pod %s/%s was replaced", r.Namespace, r.Pod.Name), true
	case pod.DeletionTimestamp != nil:
		return fmt.Sprintf("the target pod %s/%s is being deleted", r.Namespace, r.Pod.Name), true
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == r.Container && (cs.ContainerID != r.ContainerID || cs.State.Running == nil) {
			return fmt.Sprintf("the target container %s of pod %s/%s restarted", r.Container, r.Namespace, r.Pod.Name), true
		}
	}
	return "", false
}

// follow resolves the reference again until it names a running container
// other than the one that went away, starts or joins that container's
// agent and connects to it, until deadline.
func (k *Connector) follow(ctx context.Context, env *Env, gone *Resolved, opts agentclient.Options, deadline time.Time) (*agentclient.Client, error) {
	var lastErr error
	for {
		r, err := Resolve(ctx, env, k.Ref)
		if err == nil && r.ContainerID == gone.ContainerID {
			err = errors.New("the old container is still listed as running")
		}
		if err == nil {
			c, err := k.attach(ctx, env, r, r.Namespace, opts, time.Until(deadline))
			if err != nil {
				return nil, err
			}
			k.progress("now in " + r.Describe() + "; its environment and hostname stay those the session started with")
			return c, nil
		}
		lastErr = err
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the target did not come back in time: %w", lastErr)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(followPoll): // waiting for the cluster, not synchronisation
		}
	}
}
