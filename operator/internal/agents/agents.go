// Package agents is where the operator's broker gets its agents in a
// cluster: it follows a target's ready pods with a watch, starts one agent
// Job per target pod in the operator's namespace (kube.EnsureOperatorAgent:
// on the pod's node, listening on its own pod's address with TLS) and
// dials it with the certificate pinned and the key proven. An agent no
// session uses exits after its idle TTL, and its Job is then removed by
// Kubernetes (ttlSecondsAfterFinished).
package agents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/agenttls"
	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/operator/internal/broker"
	"github.com/remocal/remocal/protocol/config"
)

// Config configures the cluster's agents.
type Config struct {
	// Env is the operator's own access to the cluster.
	Env *kube.Env
	// Namespace is the operator's namespace, where agent Jobs run.
	Namespace string
	// Agent describes the agents' pods (image, resources, idle TTL ...).
	Agent   kube.AgentOptions
	Version string
	Logger  *slog.Logger
}

// Cluster implements broker.Agents on a Kubernetes cluster.
type Cluster struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	agents map[string]string // target pod "ns/name" -> agent pod name
}

var _ broker.Agents = (*Cluster)(nil)

// New returns the cluster's agents.
func New(cfg Config) *Cluster {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cluster{cfg: cfg, log: log, agents: map[string]string{}}
}

// selectorOf returns what selects target's pods: a label selector, or a
// field selector for a pod.
func (c *Cluster) selectorOf(ctx context.Context, ns, target string) (labels.Selector, fields.Selector, error) {
	kind, name, ok := strings.Cut(target, ".")
	w, known := kube.WorkloadOf(config.TargetKind(kind))
	if !ok || !known || name == "" {
		return nil, nil, fmt.Errorf("target %q is not KIND.NAME with a kind remocal knows (pod, deployment, statefulset, replicaset, job, cronjob, service): %w", target, backend.ErrNotFound)
	}
	sel, _, err := w.Pods(ctx, c.cfg.Env.Client, ns, name)
	if errors.Is(err, connect.ErrTargetNotFound) {
		return nil, nil, fmt.Errorf("%w: %w", err, backend.ErrNotFound)
	}
	if err != nil {
		return nil, nil, err
	}
	if sel == nil {
		if _, err := c.cfg.Env.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			return nil, nil, fmt.Errorf("pod %s in namespace %s: %w: %w", name, ns, err, backend.ErrNotFound)
		}
		return labels.Everything(), fields.OneTermEqualSelector("metadata.name", name), nil
	}
	return sel, fields.Everything(), nil
}

// Pods implements broker.Agents: a watch of the target's pods, sending the
// ready ones whenever that set changes.
func (c *Cluster) Pods(ctx context.Context, ns, target string) (<-chan []broker.Pod, error) {
	sel, fsel, err := c.selectorOf(ctx, ns, target)
	if err != nil {
		return nil, err
	}
	pods := c.cfg.Env.Client.CoreV1().Pods(ns)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector, o.FieldSelector = sel.String(), fsel.String()
			return pods.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector, o.FieldSelector = sel.String(), fsel.String()
			return pods.Watch(ctx, o)
		},
	}
	out := make(chan []broker.Pod)
	latest := make(chan []broker.Pod, 1)
	publish := func(set []broker.Pod) {
		select {
		case <-latest: // replaced by the newer set
		default:
		}
		latest <- set
	}
	inf := cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{})
	var last []broker.Pod
	var lastMu sync.Mutex
	update := func() {
		set := readyPods(inf.GetStore().List())
		lastMu.Lock()
		defer lastMu.Unlock()
		if last != nil && slices.Equal(set, last) {
			return
		}
		last = set
		publish(set)
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { update() },
		UpdateFunc: func(any, any) { update() },
		DeleteFunc: func(any) { update() },
	}
	if _, err := inf.AddEventHandler(handler); err != nil {
		return nil, err
	}
	go func() {
		defer close(out)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			inf.RunWithContext(ctx)
		}()
		defer wg.Wait()
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			return
		}
		update()
		for {
			select {
			case <-ctx.Done():
				return
			case set := <-latest:
				select {
				case out <- set:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// readyPods are the ready pods among objs, sorted by name.
func readyPods(objs []any) []broker.Pod {
	var out []broker.Pod
	for _, o := range objs {
		p, ok := o.(*corev1.Pod)
		if !ok || !kube.PodReady(p) {
			continue
		}
		created := p.CreationTimestamp.Time
		if p.Status.StartTime != nil {
			created = p.Status.StartTime.Time
		}
		out = append(out, broker.Pod{Namespace: p.Namespace, Name: p.Name, Created: created})
	}
	slices.SortFunc(out, func(a, b broker.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// dialPatience bounds how long Dial retries an agent whose container runs
// but which is not listening yet.
const dialPatience = 30 * time.Second

// Dial implements broker.Agents: the pod's agent, started if need be.
func (c *Cluster) Dial(ctx context.Context, pod broker.Pod) (*agentclient.Client, error) {
	p, err := c.cfg.Env.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	r, err := kube.ResolvePod(p, "")
	if err != nil {
		return nil, err
	}
	a, err := kube.EnsureOperatorAgent(ctx, c.cfg.Env, r, c.cfg.Namespace, c.cfg.Agent, func(msg string) {
		c.log.Info(msg, "pod", pod.Namespace+"/"+pod.Name)
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.agents[pod.Namespace+"/"+pod.Name] = a.Pod
	c.mu.Unlock()
	pinned, err := agenttls.PinnedConfig(a.TLSCert)
	if err != nil {
		return nil, err
	}
	opts := agentclient.Options{Name: "remocal-operator", Version: c.cfg.Version, Key: a.Key, TLS: pinned, Logger: c.log}
	deadline := time.Now().Add(dialPatience)
	backoff := 50 * time.Millisecond
	for {
		cl, err := agentclient.Dial(ctx, "tcp:"+a.AgentAddress(), opts)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("the agent of pod %s/%s (agent pod %s/%s at %s): %w", pod.Namespace, pod.Name, c.cfg.Namespace, a.Pod, a.AgentAddress(), err)
			}
			return cl, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff): // its container runs, it is about to listen
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Idle implements broker.Agents. The agent exits by itself after its idle
// TTL without clients, and Kubernetes removes its finished Job.
func (c *Cluster) Idle(pod broker.Pod) {
	c.log.Info("agent idle; it exits after its idle TTL", "pod", pod.Namespace+"/"+pod.Name, "idleTTL", c.cfg.Agent.IdleTTL)
}

// AgentName names pod's agent pod, for the operator's status.
func (c *Cluster) AgentName(pod broker.Pod) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if name := c.agents[pod.Namespace+"/"+pod.Name]; name != "" {
		return c.cfg.Namespace + "/" + name
	}
	return ""
}
