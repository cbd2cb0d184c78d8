package targets

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/protocol/daemon"
)

// KubeOptions tune the Kubernetes provider; zero values take the defaults.
type KubeOptions struct {
	Logger *slog.Logger
	// Quiet is how long a namespace must see no change before its targets
	// are rebuilt and announced (default 150 ms): a rollout changes a
	// Deployment, ReplicaSets and pods many times within a second, and
	// clients should list once for all of it. MaxDelay bounds the wait
	// while changes keep coming (default 1 s).
	Quiet, MaxDelay time.Duration
	// Resync makes the informers deliver every object again this often
	// (default 0: never). Resyncs that change nothing announce nothing.
	Resync time.Duration
}

// Kube lists a cluster's pods, workloads and services as targets. Shared
// informers keep them in memory, over all namespaces, or over the
// context's namespace when the account may not list cluster-wide. Changes
// are gathered per namespace and announced once per burst, only when the
// namespace's targets actually changed.
type Kube struct {
	env  *kube.Env
	log  *slog.Logger
	opts KubeOptions

	changed chan daemon.TargetsChanged
	// ctx ends when the provider closes; its Done channel stops the
	// informers.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// kick wakes the loop after a handler recorded a change in pending.
	kick chan struct{}

	mu sync.Mutex
	// pending holds namespaces changed since their last rebuild; true
	// when the namespace itself came or went, which must be announced
	// even though its targets did not change.
	pending map[string]bool
	byNS    map[string][]daemon.Target
	// scope is "" for all namespaces, else the only namespace watched;
	// started says whether it is decided yet.
	scope    string
	started  bool
	nsLister corelisters.NamespaceLister
	// readers read one namespace's objects from the listers, one per
	// kind the account may list.
	readers []func(ns string, o *kube.Objects)

	// Counters for tests: objects a resync delivered again unchanged,
	// rebuilds of a namespace, those that found nothing changed, and
	// namespaces announced after a rebuild.
	resyncs, rebuilds, unchanged, announced atomic.Int64
}

// NewKube starts the provider and returns at once: reaching the cluster,
// checking permissions and the informers' first lists happen in the
// background, and Changed announces the first complete listing (with an
// empty namespace: all of them).
func NewKube(env *kube.Env, o KubeOptions) *Kube {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Quiet <= 0 {
		o.Quiet = 150 * time.Millisecond
	}
	if o.MaxDelay < o.Quiet {
		o.MaxDelay = max(time.Second, o.Quiet)
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &Kube{env: env, log: o.Logger.With("provider", kube.Provider, "context", env.Context), opts: o,
		changed: make(chan daemon.TargetsChanged), ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1),
		pending: map[string]bool{}, byNS: map[string][]daemon.Target{}}
	k.wg.Go(k.run)
	return k
}

func (k *Kube) Name() string { return kube.Provider }

// Namespaces lists the cluster's namespaces, or the one watched when the
// account may not list them all.
func (k *Kube) Namespaces() []daemon.Namespace {
	k.mu.Lock()
	lister, scope, started := k.nsLister, k.scope, k.started
	var names []string
	if lister == nil {
		names = slices.Collect(maps.Keys(k.byNS))
	}
	k.mu.Unlock()
	if lister != nil {
		all, _ := lister.List(labels.Everything())
		for _, n := range all {
			names = append(names, n.Name)
		}
	} else if started && scope != "" && !slices.Contains(names, scope) {
		names = append(names, scope)
	}
	slices.Sort(names)
	out := make([]daemon.Namespace, 0, len(names))
	for _, n := range names {
		out = append(out, daemon.Namespace{Name: n, Provider: kube.Provider})
	}
	return out
}

// Targets answers from memory: the lists built at the last change.
func (k *Kube) Targets() []daemon.Target {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := []daemon.Target{}
	for _, ns := range slices.Sorted(maps.Keys(k.byNS)) {
		out = append(out, k.byNS[ns]...)
	}
	return out
}

func (k *Kube) Changed() <-chan daemon.TargetsChanged { return k.changed }

// Close stops the informers and every goroutine of the provider, then
// closes Changed.
func (k *Kube) Close() error {
	k.cancel()
	k.wg.Wait()
	return nil
}

func (k *Kube) run() {
	defer close(k.changed)
	scope, allowed, nsAllowed, ok := k.probeUntilDone()
	if !ok {
		return
	}
	factory := informers.NewSharedInformerFactoryWithOptions(k.env.Client, k.opts.Resync,
		informers.WithNamespace(scope), informers.WithTransform(slim))
	// Shutdown waits for the informers' goroutines, which end with ctx.
	defer factory.Shutdown()
	var readers []func(string, *kube.Objects)
	var informersToSync []cache.SharedIndexInformer
	for _, w := range allowed {
		inf, read := w.Watch(factory)
		informersToSync = append(informersToSync, inf)
		readers = append(readers, read)
	}
	var synced []cache.InformerSynced
	for _, inf := range informersToSync {
		reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { k.touch(obj, false) },
			UpdateFunc: func(old, obj any) { k.update(old, obj) },
			DeleteFunc: func(obj any) { k.touch(obj, false) },
		})
		if err != nil {
			k.log.Error("cannot watch Kubernetes objects; targets will not be listed", "err", err)
			return
		}
		synced = append(synced, reg.HasSynced)
	}
	var nsLister corelisters.NamespaceLister
	if nsAllowed {
		f := factory.Core().V1().Namespaces()
		reg, err := f.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			// A namespace coming or going changes the namespace list even
			// when it holds no targets.
			AddFunc:    func(obj any) { k.touchNamespace(obj) },
			DeleteFunc: func(obj any) { k.touchNamespace(obj) },
		})
		if err != nil {
			k.log.Error("cannot watch Kubernetes namespaces", "err", err)
			return
		}
		synced = append(synced, reg.HasSynced)
		nsLister = f.Lister()
	}
	factory.Start(k.ctx.Done())
	if !cache.WaitForCacheSync(k.ctx.Done(), synced...) {
		return // closed before the first lists arrived
	}
	k.mu.Lock()
	k.scope, k.started, k.nsLister, k.readers = scope, true, nsLister, readers
	k.mu.Unlock()
	// The first listing is announced once, for all namespaces, rather than
	// namespace by namespace.
	k.rebuildPending()
	k.log.Info("listing Kubernetes targets", "namespaces", orAll(scope), "kinds", kindList(allowed))
	k.loop([]daemon.TargetsChanged{{Provider: kube.Provider}})
}

// loop gathers changes per namespace and announces them: a namespace is
// rebuilt once changes have been quiet for Quiet (or MaxDelay after the
// first), and announced if its targets changed. Announcements wait in
// outbox while nobody reads Changed, so none is lost or blocks the
// informers.
func (k *Kube) loop(outbox []daemon.TargetsChanged) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var first time.Time
	for {
		var out chan daemon.TargetsChanged
		var next daemon.TargetsChanged
		if len(outbox) > 0 {
			out, next = k.changed, outbox[0]
		}
		select {
		case <-k.ctx.Done():
			return
		case <-k.kick:
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			timer.Reset(min(k.opts.Quiet, first.Add(k.opts.MaxDelay).Sub(now)))
		case <-timer.C:
			first = time.Time{}
			for _, ns := range k.rebuildPending() {
				c := daemon.TargetsChanged{Provider: kube.Provider, Namespace: ns}
				k.announced.Add(1)
				if !slices.Contains(outbox, c) {
					outbox = append(outbox, c)
				}
			}
		case out <- next:
			outbox = outbox[1:]
		}
	}
}

// rebuildPending rebuilds the namespaces changed since the last time from
// the listers, and returns those whose targets (or existence) changed.
func (k *Kube) rebuildPending() []string {
	k.mu.Lock()
	pending := k.pending
	k.pending = map[string]bool{}
	readers := k.readers
	k.mu.Unlock()
	var changed []string
	for _, ns := range slices.Sorted(maps.Keys(pending)) {
		var o kube.Objects
		for _, read := range readers {
			read(ns, &o)
		}
		next := kube.BuildTargets(o)
		k.rebuilds.Add(1)
		k.mu.Lock()
		same := reflect.DeepEqual(k.byNS[ns], next) || len(next) == 0 && len(k.byNS[ns]) == 0
		if len(next) == 0 {
			delete(k.byNS, ns)
		} else {
			k.byNS[ns] = next
		}
		k.mu.Unlock()
		if same && !pending[ns] {
			k.unchanged.Add(1)
			continue
		}
		changed = append(changed, ns)
	}
	return changed
}

// update skips resyncs: the informer hands back the very same version.
func (k *Kube) update(old, obj any) {
	o, err1 := meta.Accessor(old)
	n, err2 := meta.Accessor(obj)
	if err1 == nil && err2 == nil && n.GetResourceVersion() != "" && o.GetResourceVersion() == n.GetResourceVersion() {
		k.resyncs.Add(1)
		return
	}
	k.touch(obj, false)
}

// touch records that obj's namespace changed. Handlers run on the
// informers' goroutines, so this only records and wakes the loop.
func (k *Kube) touch(obj any, namespaceItself bool) {
	ns := ""
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		ns, _, _ = cache.SplitMetaNamespaceKey(d.Key)
		if namespaceItself {
			ns = d.Key
		}
	} else if m, err := meta.Accessor(obj); err == nil {
		ns = m.GetNamespace()
		if namespaceItself {
			ns = m.GetName()
		}
	}
	if ns == "" {
		return
	}
	k.mu.Lock()
	k.pending[ns] = k.pending[ns] || namespaceItself
	k.mu.Unlock()
	select {
	case k.kick <- struct{}{}:
	default: // a wake-up is already pending
	}
}

func (k *Kube) touchNamespace(obj any) { k.touch(obj, true) }

// slim drops what targets never read from cached objects, so that a large
// cluster costs less memory.
func slim(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
		if a := m.GetAnnotations(); a != nil {
			delete(a, "kubectl.kubernetes.io/last-applied-configuration")
		}
	}
	return obj, nil
}

// probeUntilDone decides what to watch, retrying while the cluster cannot
// be reached; ok is false when the provider closed first.
func (k *Kube) probeUntilDone() (scope string, kinds []kube.Workload, namespaces bool, ok bool) {
	wait := time.Second
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(k.ctx, 30*time.Second)
		scope, kinds, namespaces, err := k.probe(ctx)
		cancel()
		if err == nil {
			return scope, kinds, namespaces, true
		}
		if k.ctx.Err() != nil {
			return "", nil, false, false
		}
		level := slog.LevelWarn
		if attempt > 0 {
			level = slog.LevelDebug // said once; the retries are noise
		}
		k.log.Log(context.Background(), level, "cannot list Kubernetes targets yet; retrying", "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-k.ctx.Done():
			t.Stop()
			return "", nil, false, false
		case <-t.C:
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// probe finds what the account may list: every kind in all namespaces, or
// else in the context's namespace, where kinds it may not list are left
// out. It lists one object of each kind, which is what the informers will
// do.
func (k *Kube) probe(ctx context.Context) (scope string, kinds []kube.Workload, namespaces bool, err error) {
	allowed, forbidden, err := k.mayList(ctx, metav1.NamespaceAll)
	if err != nil {
		return "", nil, false, err
	}
	if len(forbidden) == 0 {
		_, err := k.env.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 1})
		switch {
		case err == nil:
			return metav1.NamespaceAll, allowed, true, nil
		case !apierrors.IsForbidden(err):
			return "", nil, false, fmt.Errorf("list namespaces: %w", err)
		}
		k.log.Info("your Kubernetes account may not list namespaces; namespaces are those holding targets")
		return metav1.NamespaceAll, allowed, false, nil
	}
	ns := k.env.Namespace
	k.log.Info("listing Kubernetes targets in the context's namespace only: your account may not list them in all namespaces",
		"namespace", ns, "forbidden_cluster_wide", kindList(forbidden))
	allowed, forbidden, err = k.mayList(ctx, ns)
	if err != nil {
		return "", nil, false, err
	}
	if len(forbidden) > 0 {
		k.log.Warn("your Kubernetes account may not list some kinds in its namespace; they are not listed",
			"namespace", ns, "forbidden", kindList(forbidden))
	}
	return ns, allowed, false, nil
}

// mayList splits the kinds into those the account may list in ns and those
// it may not, or returns an error when the cluster did not answer.
func (k *Kube) mayList(ctx context.Context, ns string) (allowed, forbidden []kube.Workload, err error) {
	for _, w := range kube.Workloads {
		ok, err := w.MayList(ctx, k.env.Client, ns)
		switch {
		case err != nil:
			return nil, nil, err
		case ok:
			allowed = append(allowed, w)
		default:
			forbidden = append(forbidden, w)
		}
	}
	return allowed, forbidden, nil
}

func kindList(ws []kube.Workload) string {
	var names []string
	for _, w := range ws {
		names = append(names, string(w.Kind))
	}
	return strings.Join(names, ",")
}

func orAll(ns string) string {
	if ns == "" {
		return "all"
	}
	return ns
}
