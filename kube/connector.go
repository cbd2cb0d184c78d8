package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/protocol/config"
)

// DefaultImageRepo is the agent image `make images` builds; the tag is the
// client's version, so client and agent speak the same protocol.
const DefaultImageRepo = "remocal.local/agent"

// Targetless is the reference of a session without a target: an agent in a
// pod of its own gives the cluster's network and DNS.
const Targetless = "targetless"

// Connector reaches the agent serving a Kubernetes target: it resolves the
// reference to one container, finds or starts that container's agent and
// talks to it through a port-forward.
type Connector struct {
	Ref   string // "deployment/api", "pod/x/container/y", "targetless", ...
	Flags Flags
	Agent AgentOptions
	// Progress receives one-line messages for the user (which pod was
	// chosen and why, the agent starting).
	Progress func(string)

	mu       sync.Mutex
	env      *Env
	resolved *Resolved
	agent    *Agent
	// via is how the connection reaches the agent ("directly at
	// ADDR (TLS)", "through a port-forward ..."), for Transport.
	via string
}

// Transport says how the current connection reaches the agent: directly
// over the pod network or through a port-forward, and why not directly.
func (k *Connector) Transport() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.via
}

// connected records how the agent was reached and tells the user when
// that is new.
func (k *Connector) connected(via string) {
	k.mu.Lock()
	changed := k.via != via
	k.via = via
	k.mu.Unlock()
	if changed {
		k.progress("connected to the agent " + via)
	}
}

// Describe names the target, with the pod once it is resolved.
func (k *Connector) Describe() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.resolved != nil {
		return k.resolved.Describe()
	}
	return k.Ref
}

// Note explains the choices made for the session: which of several
// running pods it uses, and how it reaches the agent (directly or through
// a port-forward, and why); empty before connecting.
func (k *Connector) Note() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var notes []string
	if k.resolved != nil && k.resolved.Note != "" {
		notes = append(notes, k.resolved.Note)
	}
	if k.via != "" {
		notes = append(notes, "the agent is reached "+k.via)
	}
	return strings.Join(notes, "; ")
}

func (k *Connector) progress(msg string) {
	if k.Progress != nil {
		k.Progress(msg)
	}
}

// Connect resolves the target, ensures its agent runs and connects.
func (k *Connector) Connect(ctx context.Context, opts agentclient.Options) (*agentclient.Client, func(), error) {
	env, err := Load(k.Flags)
	if err != nil {
		return nil, nil, err
	}
	var r *Resolved
	ns := env.Namespace
	if k.Ref != Targetless {
		if r, err = Resolve(ctx, env, k.Ref); err != nil {
			return nil, nil, err
		}
		ns = r.Namespace
		if r.Note != "" {
			k.progress(r.Note)
		}
	}
	k.mu.Lock()
	k.env = env
	k.mu.Unlock()
	c, err := k.attach(ctx, env, r, ns, opts, agentListenTimeout)
	if err != nil {
		return nil, nil, err
	}
	return c, func() { c.Close() }, nil
}

// attach ensures the agent of r's container (or the namespace's targetless
// agent) runs, connects to it, and makes it the connector's.
func (k *Connector) attach(ctx context.Context, env *Env, r *Resolved, ns string, opts agentclient.Options, patience time.Duration) (*agentclient.Client, error) {
	if r != nil {
		if err := checkTarget(ctx, env, r, k.Flags.AllowTargets); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	a, err := EnsureAgent(ctx, env, r, ns, k.Agent, k.progress)
	if err != nil {
		return nil, err
	}
	if a.Reused {
		k.progress(fmt.Sprintf("using the running agent %s/%s", a.Namespace, a.Pod))
	} else {
		k.progress(fmt.Sprintf("agent %s/%s started in %v", a.Namespace, a.Pod, time.Since(start).Round(10*time.Millisecond)))
	}
	c, via, err := dialAgent(ctx, env, a, opts, patience, k.Flags.Transport)
	if err != nil {
		if a.job != nil {
			// An agent nobody can reach must not stay behind.
			removeJob(context.WithoutCancel(ctx), env, a.Namespace, a.job)
		}
		return nil, err
	}
	k.mu.Lock()
	k.resolved, k.agent = r, a
	k.mu.Unlock()
	k.connected(via)
	return c, nil
}

// agentListenTimeout bounds the wait between the agent's container running
// and its listener accepting: the kubelet reports a container running when
// its process starts.
const agentListenTimeout = 20 * time.Second

// dialAgent connects to the agent and shakes hands, retrying while the
// agent is not listening yet: directly over the pod network, or through a
// port-forward, as transport allows (direct first under auto). It says
// which it took.
func dialAgent(ctx context.Context, env *Env, a *Agent, opts agentclient.Options, patience time.Duration, transport config.Transport) (*agentclient.Client, string, error) {
	deadline := time.Now().Add(patience)
	backoff := 50 * time.Millisecond
	opts.Key = a.Key
	tryDirect := transport != config.TransportPortForward && a.DirectAddress() != ""
	tryPF := transport != config.TransportDirect
	if transport == config.TransportDirect && !tryDirect {
		return nil, "", fmt.Errorf("the agent %s/%s cannot be reached directly (transport direct): %s; use --transport auto or port-forward",
			a.Namespace, a.Pod, noDirect(a))
	}
	// notDirect says why the port-forward is used, when direct was an
	// option; pfForbidden why not the port-forward, when direct is left.
	notDirect := ""
	var pfForbidden error
	if transport != config.TransportPortForward && !tryDirect {
		notDirect = noDirect(a)
	}
	for {
		var err error
		if tryDirect {
			var c *agentclient.Client
			var stop error
			if c, err = dialDirect(ctx, a, opts); err == nil {
				return c, "directly at " + a.DirectAddress() + " (TLS)", nil
			}
			if tryDirect, notDirect, stop = afterDirect(a, err, tryPF); stop != nil {
				if pfForbidden != nil {
					stop = fmt.Errorf("%w; and the port-forward: %w", stop, pfForbidden)
				}
				return nil, "", stop
			}
		}
		if tryPF {
			var c *agentclient.Client
			c, err = dialPortForward(ctx, env, a, opts)
			if err == nil {
				return retryDirect(ctx, a, opts, c, tryDirect, notDirect)
			}
			switch {
			case isForbiddenPF(err) && tryDirect:
				// Direct needs no port-forward right: wait for the agent
				// there alone.
				tryPF, pfForbidden = false, err
			case errors.Is(err, ErrNotOurAgent) || isForbiddenPF(err):
				return nil, "", err
			}
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		if gone := agentGone(ctx, env, a); gone != nil {
			return nil, "", gone
		}
		if time.Now().After(deadline) {
			how := "through a port-forward"
			if !tryPF {
				how = "directly at " + a.DirectAddress()
			}
			if pfForbidden != nil {
				how += " (and " + pfForbidden.Error() + ")"
			}
			return nil, "", fmt.Errorf("cannot reach the agent %s/%s %s within %v: %w (its log: kubectl -n %s logs %s)",
				a.Namespace, a.Pod, how, patience, err, a.Namespace, a.Pod)
		}
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-time.After(backoff): // retry backoff, not synchronisation
		}
		backoff = min(2*backoff, time.Second)
	}
}

// afterDirect decides what a failed direct dial leads to: whether to try
// directly again, why the port-forward is used instead, or an error that
// ends the dial.
func afterDirect(a *Agent, err error, canPF bool) (again bool, notDirect string, stop error) {
	switch why := classifyDirect(err); {
	case why == directImpostor && !canPF:
		return false, "", notOurAgentAt(a, err)
	case why == directImpostor:
		return false, fmt.Sprintf("%s did not prove to be the agent and got nothing (%v)", a.DirectAddress(), err), nil
	case why == directUnreachable && !canPF:
		// The agent starting cannot change that.
		return false, "", fmt.Errorf("cannot reach the agent %s/%s directly at %s: %w; is the pod network reachable from here? (--transport auto falls back to a port-forward)",
			a.Namespace, a.Pod, a.DirectAddress(), err)
	case why == directUnreachable:
		return false, fmt.Sprintf("%s cannot be reached from here (%v)", a.DirectAddress(), err), nil
	}
	// Refused: the agent may not listen yet.
	return true, fmt.Sprintf("%s refused the connection", a.DirectAddress()), nil
}

// retryDirect follows a port-forward that succeeded where a direct dial
// was refused just before: the agent binds its TLS listener before its
// loopback one, so it listens now, and one more direct dial tells a late
// agent from a network that refuses the port.
func retryDirect(ctx context.Context, a *Agent, opts agentclient.Options, pf *agentclient.Client, tryDirect bool, notDirect string) (*agentclient.Client, string, error) {
	how := "through a port-forward"
	if tryDirect {
		if c, err := dialDirect(ctx, a, opts); err == nil {
			pf.Close()
			return c, "directly at " + a.DirectAddress() + " (TLS)", nil
		}
	}
	if notDirect != "" {
		how += " (not directly: " + notDirect + ")"
	}
	return pf, how, nil
}

// dialPortForward port-forwards to the agent's loopback listener and
// shakes hands.
func dialPortForward(ctx context.Context, env *Env, a *Agent, opts agentclient.Options) (*agentclient.Client, error) {
	conn, err := DialPod(env, a.Namespace, a.Pod, a.Port)
	if apierrors.IsForbidden(err) {
		// Waiting cannot help: say which permission is missing.
		return nil, forbiddenPF{apiError(err, "create", "pods/portforward", a.Namespace, a.Pod)}
	}
	if err != nil {
		return nil, err
	}
	c, err := agentclient.New(ctx, conn, opts)
	if err != nil {
		conn.Close()
		if errors.Is(err, agentclient.ErrUnprovenAgent) {
			// Whatever answered got the hello and nothing else.
			return nil, notOurAgent(a.Namespace, a.Pod, err.Error())
		}
		return nil, err
	}
	return c, nil
}

// forbiddenPF is a port-forward the user may not create.
type forbiddenPF struct{ error }

func (f forbiddenPF) Unwrap() error { return f.error }

func isForbiddenPF(err error) bool {
	var f forbiddenPF
	return errors.As(err, &f)
}

// ErrAgentGone says the agent's pod was deleted or its agent exited: a new
// connection would need a new agent, and with it new subscriptions.
var ErrAgentGone = errors.New("agent gone")

// agentGone explains why the agent cannot be reached any more, or returns
// nil if its pod still runs it.
func agentGone(ctx context.Context, env *Env, a *Agent) error {
	pod, err := env.Client.CoreV1().Pods(a.Namespace).Get(ctx, a.Pod, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: the agent pod %s/%s was deleted", ErrAgentGone, a.Namespace, a.Pod)
	case err != nil:
		return nil // the apiserver is unreachable too; keep trying
	case pod.DeletionTimestamp != nil:
		return fmt.Errorf("%w: the agent pod %s/%s is being deleted", ErrAgentGone, a.Namespace, a.Pod)
	}
	for _, s := range append(pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses...) {
		if s.State.Terminated != nil && s.Name == a.Container {
			return fmt.Errorf("%w: the agent in pod %s/%s exited (%s, exit %d): %s", ErrAgentGone,
				a.Namespace, a.Pod, s.State.Terminated.Reason, s.State.Terminated.ExitCode, tail(s.State.Terminated.Message))
		}
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return fmt.Errorf("%w: the agent pod %s/%s has ended (%s)", ErrAgentGone, a.Namespace, a.Pod, pod.Status.Phase)
	}
	return nil
}

// Redial reconnects to the agent Connect reached, after the connection
// dropped (a port-forward ends when the apiserver or kubelet restarts, or
// after a network change). If that agent is gone because its container
// went away (a rollout, a restart), it follows the target to its new
// container (follow.go); if the agent is gone while its container still
// runs, the error wraps ErrAgentGone and no other agent is started.
func (k *Connector) Redial(ctx context.Context, opts agentclient.Options, patience time.Duration) (*agentclient.Client, func(), error) {
	deadline := time.Now().Add(patience)
	k.mu.Lock()
	env, r, a := k.env, k.resolved, k.agent
	k.mu.Unlock()
	if a == nil {
		return nil, nil, errors.New("redial before connect")
	}
	c, via, err := dialAgent(ctx, env, a, opts, patience, k.Flags.Transport)
	if err == nil {
		k.connected(via)
	}
	if errors.Is(err, ErrAgentGone) && r != nil {
		if why, moved := targetMoved(ctx, env, r); moved {
			k.progress(why + "; following the target")
			c, err = k.follow(ctx, env, r, opts, deadline)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return c, func() { c.Close() }, nil
}
