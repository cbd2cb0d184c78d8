// Package opsessions watches the sessions of the cluster's remocal
// operator, everybody's, and turns what changes into the daemon's
// notifications: remocal/sessionChanged with a remote session, and
// remocal/conflict when a port lock moves from one session to another
// (an override). An IDE shows from them "port 8080 on deploy/api is
// stolen by bob with header x-user: bob since 10:02".
package opsessions

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/tools/cache"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/wire"
)

// Notification is one message for every client of the daemon.
type Notification struct {
	Method string
	Params any
}

// takenWindow is how recently a session may have dropped a lock for
// another session taking it to count as taken (an override) rather than a
// port released and then reused: the operator moves the lock in one step,
// but the two sessions' updates reach the watch one after the other.
const takenWindow = 2 * time.Second

// Watcher keeps the operator's sessions in an informer's cache and
// reports their changes on Notifications.
type Watcher struct {
	log      *slog.Logger
	informer cache.SharedIndexInformer
	out      chan Notification
	now      func() time.Time
	cancel   context.CancelFunc
	done     chan struct{}

	mu sync.Mutex
	// kill deletes a session through the operator's API; nil until the
	// operator was found (and for watchers over a given list-watch).
	kill func(ctx context.Context, ns, name string) error
	// holders are the locks held on each port of a target, by session
	// and filter; released the locks let go of lately (at: when).
	holders  map[portKey][]lockHolder
	released map[portKey][]lockHolder
}

// portKey is a port of a target: the locks on it conflict or not by
// their filters, as the operator decides (wire.Conflicts).
type portKey struct {
	namespace, target string
	port              uint16
}

type lockHolder struct {
	session string
	filter  *wire.HTTPFilter
	at      time.Time
}

// New starts watching sessions through lw (the operator's API, or a fake
// source in tests).
func New(lw cache.ListerWatcher, log *slog.Logger) *Watcher {
	return newWith(lw, log, time.Now)
}

func newWith(lw cache.ListerWatcher, log *slog.Logger, now func() time.Time) *Watcher {
	return start(func(context.Context, *Watcher) (cache.ListerWatcher, error) { return lw, nil }, log, now)
}

// start runs source in the background (it may wait for the cluster), then
// the informer over the list-watch it returns; a source error ends the
// watch (there is nothing to watch).
func start(source func(context.Context, *Watcher) (cache.ListerWatcher, error), log *slog.Logger, now func() time.Time) *Watcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{log: log, out: make(chan Notification, 256), now: now, cancel: cancel, done: make(chan struct{}),
		holders: map[portKey][]lockHolder{}, released: map[portKey][]lockHolder{}}
	go func() {
		defer close(w.done)
		lw, err := source(ctx, w)
		if err != nil {
			if ctx.Err() == nil {
				log.Info("not watching the operator's sessions", "reason", err)
			}
			return
		}
		inf := cache.NewSharedIndexInformer(lw, &operator.Session{}, 0, cache.Indexers{})
		inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { w.changed(nil, obj) },
			UpdateFunc: w.changed,
			DeleteFunc: w.deleted,
		})
		w.mu.Lock()
		w.informer = inf
		w.mu.Unlock()
		inf.Run(ctx.Done())
	}()
	return w
}

func (w *Watcher) inf() cache.SharedIndexInformer {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.informer
}

// Notifications receives what clients are to be told; it is never closed
// (select on it with the daemon's own end).
func (w *Watcher) Notifications() <-chan Notification { return w.out }

// HasSynced reports whether the first listing is in.
func (w *Watcher) HasSynced() bool {
	inf := w.inf()
	return inf != nil && inf.HasSynced()
}

// List returns the sessions known now, by namespace and name.
func (w *Watcher) List() []daemon.RemoteSession {
	inf := w.inf()
	if inf == nil {
		return nil
	}
	var out []daemon.RemoteSession
	for _, obj := range inf.GetStore().List() {
		if s, ok := obj.(*operator.Session); ok {
			out = append(out, Remote(s))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Close stops the watch and waits for it.
func (w *Watcher) Close() {
	w.cancel()
	<-w.done
}

func (w *Watcher) send(n Notification) {
	select {
	case w.out <- n:
	default:
		// The daemon has stopped reading; a client lists again on its
		// next notification.
		w.log.Warn("operator session notification dropped: the daemon is not reading", "method", n.Method)
	}
}

func (w *Watcher) changed(oldObj, obj any) {
	s, ok := obj.(*operator.Session)
	if !ok {
		return
	}
	if old, ok := oldObj.(*operator.Session); ok && old.ResourceVersion == s.ResourceVersion {
		return // a resync: nothing new
	}
	r := Remote(s)
	w.send(Notification{daemon.NotifySessionChanged, daemon.SessionChanged{Remote: &r}})
	for _, c := range w.trackLocks(s, false) {
		w.send(Notification{daemon.NotifyConflict, c})
	}
}

func (w *Watcher) deleted(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	s, ok := obj.(*operator.Session)
	if !ok {
		return
	}
	w.trackLocks(s, true)
	r := Remote(s)
	r.Phase, r.Ports, r.QueueSplits, r.ExpiresAt = daemon.RemoteEnded, []daemon.RemotePort{}, nil, nil
	w.send(Notification{daemon.NotifySessionChanged, daemon.SessionChanged{Remote: &r}})
}

// trackLocks records the locks s holds now (none if gone) and returns a
// conflict for each lock it took from another session that held it still
// or let it go just before. A lock is taken from every lock its filter
// conflicts with (an unfiltered override takes a port from every filter),
// the rule the operator's override applies.
func (w *Watcher) trackLocks(s *operator.Session, gone bool) []daemon.Conflict {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	type held struct {
		k portKey
		p operator.PortStatus
	}
	var holds []held
	if !gone {
		for _, p := range s.Status.Ports {
			if p.Lock {
				holds = append(holds, held{portKey{s.Namespace, s.Spec.Target, p.Port}, p})
			}
		}
	}
	holdsNow := func(k portKey, f *wire.HTTPFilter) bool {
		return slices.ContainsFunc(holds, func(h held) bool { return h.k == k && sameFilter(h.p.Filter, f) })
	}
	for k, hs := range w.holders {
		if k.namespace != s.Namespace {
			continue
		}
		w.holders[k] = slices.DeleteFunc(hs, func(h lockHolder) bool {
			if h.session != s.Name || holdsNow(k, h.filter) {
				return false
			}
			w.released[k] = append(w.released[k], lockHolder{session: s.Name, filter: h.filter, at: now})
			return true
		})
	}
	var out []daemon.Conflict
	for _, h := range holds {
		if slices.ContainsFunc(w.holders[h.k], func(l lockHolder) bool { return l.session == s.Name && sameFilter(l.filter, h.p.Filter) }) {
			continue // held already: taken (or not) when it was
		}
		var from []string
		takenFrom := func(l lockHolder) bool {
			if l.session == s.Name || !filtersConflict(l.filter, h.p.Filter) {
				return false
			}
			if !slices.Contains(from, l.session) {
				from = append(from, l.session)
			}
			return true
		}
		w.holders[h.k] = slices.DeleteFunc(w.holders[h.k], takenFrom)
		w.released[h.k] = slices.DeleteFunc(w.released[h.k], func(l lockHolder) bool {
			return now.Sub(l.at) <= takenWindow && takenFrom(l)
		})
		for _, prev := range from {
			out = append(out, taken(s, h.p, prev))
		}
		w.holders[h.k] = append(w.holders[h.k], lockHolder{session: s.Name, filter: h.p.Filter})
	}
	// Forget releases nobody took, and ports nobody holds.
	for k, rs := range w.released {
		if rs = slices.DeleteFunc(rs, func(l lockHolder) bool { return now.Sub(l.at) > takenWindow }); len(rs) == 0 {
			delete(w.released, k)
		} else {
			w.released[k] = rs
		}
	}
	for k, hs := range w.holders {
		if len(hs) == 0 {
			delete(w.holders, k)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	return out
}

func sameFilter(a, b *wire.HTTPFilter) bool { return a.String() == b.String() }

// filtersConflict reports whether steals of one port with filters a and b
// cannot both hold.
func filtersConflict(a, b *wire.HTTPFilter) bool {
	return wire.Conflicts(wire.Subscribe{Port: 1, Mode: wire.ModeSteal, Filter: a}, wire.Subscribe{Port: 1, Mode: wire.ModeSteal, Filter: b})
}

// taken is the conflict of a lock s took from the session named prev.
func taken(s *operator.Session, p operator.PortStatus, prev string) daemon.Conflict {
	h := &wire.Holder{Client: s.Spec.Client.Name, User: s.Spec.User.Username, Session: s.Name, Port: p.Port, Mode: p.Mode, Filter: p.Filter}
	if p.Since != nil {
		since := p.Since.Time
		h.Since = &since
	}
	target := TargetRef(s.Spec.Target)
	msg := fmt.Sprintf("port %d of %s was taken from session %s/%s by %s (%s, session %s)", p.Port, target, s.Namespace, prev,
		s.Spec.User.Username, s.Spec.Client.Name, s.Name)
	return daemon.Conflict{Target: target, Port: p.Port, Mode: p.Mode, Holder: h, Message: msg,
		RemoteSession: s.Namespace + "/" + prev, Taken: true}
}

// Remote is a session as the daemon's clients see it.
func Remote(s *operator.Session) daemon.RemoteSession {
	r := daemon.RemoteSession{Name: s.Name, Namespace: s.Namespace, User: s.Spec.User.Username, Client: s.Spec.Client.Name,
		Tool: s.Spec.Client.Tool, Target: TargetRef(s.Spec.Target), Phase: s.Status.Phase, Since: s.Status.StartTime.Time.UTC(),
		Ports: make([]daemon.RemotePort, 0, len(s.Status.Ports))}
	if s.Status.ExpiresAt != nil {
		t := s.Status.ExpiresAt.Time.UTC()
		r.ExpiresAt = &t
	}
	for _, p := range s.Status.Ports {
		rp := daemon.RemotePort{Port: p.Port, Mode: p.Mode, Filter: p.Filter, Lock: p.Lock}
		if p.Since != nil {
			t := p.Since.Time.UTC()
			rp.Since = &t
		}
		r.Ports = append(r.Ports, rp)
	}
	for _, q := range s.Status.QueueSplits {
		r.QueueSplits = append(r.QueueSplits, daemon.RemoteQueueSplit{Consumer: q.Consumer, Queue: q.Queue, Mode: q.Mode,
			Filter: q.Filter, Since: q.Since.Time.UTC(), Delivered: q.Delivered})
	}
	return r
}

// TargetRef spells an operator target name ("deployment.api") as remocal's
// references do ("deployment/api").
func TargetRef(name string) string {
	kind, rest, ok := strings.Cut(name, ".")
	if !ok {
		return name
	}
	return kind + "/" + rest
}
