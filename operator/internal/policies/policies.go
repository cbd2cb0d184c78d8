// Package policies follows the policy resources (protocol/policy) with
// informers, for the broker to enforce: which policies apply to a target,
// and a call when any changes.
package policies

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/remocal/remocal/protocol/policy"
)

// Resources of the policies.
var (
	PolicyResource        = policy.SchemeGroupVersion.WithResource(policy.ResourcePolicies)
	ClusterPolicyResource = policy.SchemeGroupVersion.WithResource(policy.ResourceClusterPolicies)
)

// Watcher follows every RemocalPolicy and RemocalClusterPolicy.
type Watcher struct {
	log     *slog.Logger
	factory dynamicinformer.DynamicSharedInformerFactory
	ns      cache.SharedIndexInformer
	cluster cache.SharedIndexInformer

	mu       sync.Mutex
	onChange []func()
}

// New returns a watcher over the cluster's policies; Start runs it.
func New(dyn dynamic.Interface, log *slog.Logger) *Watcher {
	// No resync: a resync would call every handler with unchanged
	// objects, and every session would be evaluated again for nothing.
	f := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	w := &Watcher{log: log, factory: f,
		ns:      f.ForResource(PolicyResource).Informer(),
		cluster: f.ForResource(ClusterPolicyResource).Informer(),
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { w.changed() },
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*unstructured.Unstructured)
			c, ok2 := cur.(*unstructured.Unstructured)
			if ok1 && ok2 && o.GetResourceVersion() == c.GetResourceVersion() {
				return
			}
			w.changed()
		},
		DeleteFunc: func(any) { w.changed() },
	}
	w.ns.AddEventHandler(h)
	w.cluster.AddEventHandler(h)
	return w
}

// OnChange registers f to be called (on the informer's goroutine) after
// any policy is created, changed or deleted.
func (w *Watcher) OnChange(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.onChange = append(w.onChange, f)
}

func (w *Watcher) changed() {
	if !w.synced() {
		return // the initial list: nothing runs under the old set yet
	}
	w.mu.Lock()
	fs := append([]func(){}, w.onChange...)
	w.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

// Start runs the informers until ctx ends; Shutdown waits for them.
func (w *Watcher) Start(ctx context.Context) { w.factory.Start(ctx.Done()) }

// Shutdown waits for the informers' goroutines (after ctx ended).
func (w *Watcher) Shutdown() { w.factory.Shutdown() }

// WaitForSync waits until both informers have listed, or ctx ends.
func (w *Watcher) WaitForSync(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), w.ns.HasSynced, w.cluster.HasSynced) {
		return errors.New("the policies (remocalpolicies, remocalclusterpolicies.policy.remocal.dev) could not be listed; is the chart's CRD installed, and may the operator list them?")
	}
	return nil
}

// Synced reports whether both informers have listed.
func (w *Watcher) Synced() bool { return w.synced() }

func (w *Watcher) synced() bool { return w.ns.HasSynced() && w.cluster.HasSynced() }

// syncWait is how long a session waits for the policies' first list.
const syncWait = 10 * time.Second

// errNotLoaded refuses sessions until the policies are known: a session
// let through before would escape them.
var errNotLoaded = &policy.Denial{Policy: policy.Ref{Kind: "policies"}, Rule: policy.RuleInvalid,
	Message: "the operator has not loaded the policies yet (remocalpolicies and remocalclusterpolicies.policy.remocal.dev): try again in a moment; if it lasts, check that the chart's CRDs are installed (kubectl get crd remocalpolicies.policy.remocal.dev)"}

// For implements broker.Policies.
func (w *Watcher) For(t policy.Target) (policy.Set, error) {
	if !w.synced() {
		// Right after the operator starts: the first list takes a moment.
		ctx, cancel := context.WithTimeout(context.Background(), syncWait)
		defer cancel()
		if !cache.WaitForCacheSync(ctx.Done(), w.ns.HasSynced, w.cluster.HasSynced) {
			return nil, errNotLoaded
		}
	}
	var set policy.Set
	for _, obj := range w.cluster.GetStore().List() {
		ref, spec, err := decode(obj, policy.KindClusterPolicy)
		if err == nil {
			var ok bool
			ok, err = policy.Selects(&spec, "", t)
			if ok {
				set = append(set, policy.Applied{Ref: ref, Spec: spec})
			}
		}
		if err != nil {
			return nil, policy.Invalid(ref, err)
		}
	}
	for _, obj := range w.ns.GetStore().List() {
		ref, spec, err := decode(obj, policy.KindPolicy)
		if ref.Namespace != t.Namespace {
			continue
		}
		if err == nil {
			var ok bool
			ok, err = policy.Selects(&spec, ref.Namespace, t)
			if ok {
				set = append(set, policy.Applied{Ref: ref, Spec: spec})
			}
		}
		if err != nil {
			return nil, policy.Invalid(ref, err)
		}
	}
	set.Sort()
	return set, nil
}

// decode turns an informer's object into a policy.
func decode(obj any, kind string) (policy.Ref, policy.Spec, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return policy.Ref{Kind: kind}, policy.Spec{}, fmt.Errorf("unexpected object %T", obj)
	}
	ref := policy.Ref{Kind: kind, Namespace: u.GetNamespace(), Name: u.GetName()}
	var p policy.RemocalPolicy
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p); err != nil {
		return ref, policy.Spec{}, fmt.Errorf("decode: %w", err)
	}
	return ref, p.Spec, nil
}

// TargetLabels reads a target object's labels with the dynamic client:
// kind as remocal spells it (resource "deployments.apps").
func TargetLabels(ctx context.Context, dyn dynamic.Interface, resource, ns, name string) (map[string]string, error) {
	gr := schema.ParseGroupResource(resource)
	gvr := gr.WithVersion("v1")
	u, err := dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return u.GetLabels(), nil
}
