package broker

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/protocol/operator"
)

// historySize is how many changes the registry remembers for watches that
// resume from a resourceVersion; older ones get backend.ErrExpired.
const historySize = 1024

// maxWatchBacklog bounds the changes queued for one slow watcher: beyond
// it the watch ends and its client lists again, rather than the operator
// buffering without limit.
const maxWatchBacklog = 4096

// registry is the live session registry: every change of every session
// gets the next resourceVersion and goes to the watchers.
type registry struct {
	mu       sync.Mutex
	rv       uint64
	sessions map[string]*session // by namespace/name
	history  []backend.SessionEvent
	watchers map[*watcher]struct{}
	// killed remembers, for endedTTL, the sessions deleted here and why.
	// A client that lost its connection as its session was killed resumes
	// by name; a name this replica never knew is adopted (a leader
	// handover), and so is one whose lease expired (the client was only
	// silent), but a killed one must stay ended.
	killed map[string]endedSession
}

type endedSession struct {
	at     time.Time
	reason string
}

const (
	endedTTL = 10 * time.Minute
	maxEnded = 10000
)

func newRegistry() *registry {
	return &registry{sessions: map[string]*session{}, watchers: map[*watcher]struct{}{}, killed: map[string]endedSession{}}
}

// killedHere reports why the session namespace/name was deleted, if it
// was on this replica within endedTTL.
func (r *registry) killedHere(namespace, name string) (reason string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.killed[sessionKey(namespace, name)]
	if !ok || time.Since(e.at) > endedTTL {
		return "", false
	}
	return e.reason, true
}

// rememberKilled records a deleted session, forgetting those past
// endedTTL and, beyond maxEnded, the oldest.
func (r *registry) rememberKilled(namespace, name, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := sessionKey(namespace, name)
	now := time.Now()
	oldestKey, oldest := "", now
	for k, e := range r.killed {
		if now.Sub(e.at) > endedTTL {
			delete(r.killed, k)
		} else if e.at.Before(oldest) {
			oldestKey, oldest = k, e.at
		}
	}
	if len(r.killed) >= maxEnded {
		delete(r.killed, oldestKey)
	}
	r.killed[key] = endedSession{at: now, reason: reason}
}

func sessionKey(namespace, name string) string { return namespace + "/" + name }

// publish records a change of s. obj is s's state (taken by the caller
// without holding r.mu; the lock order is r.mu before session.mu). Adding
// a session under a name another one has is refused (false).
func (r *registry) publish(typ backend.EventType, s *session) bool {
	// One publish of s at a time, so a later state never gets an earlier
	// version than an older one.
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	obj := s.object()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch typ {
	case backend.Added:
		if other := r.sessions[sessionKey(s.ns, s.name)]; other != nil && other != s {
			return false
		}
		r.sessions[sessionKey(s.ns, s.name)] = s
	case backend.Deleted:
		if r.sessions[sessionKey(s.ns, s.name)] != s {
			return true // deleted already
		}
		delete(r.sessions, sessionKey(s.ns, s.name))
	default:
		if r.sessions[sessionKey(s.ns, s.name)] != s {
			return true // a late change of a session that is gone
		}
	}
	r.rv++
	s.rv.Store(r.rv)
	obj.ResourceVersion = strconv.FormatUint(r.rv, 10)
	ev := backend.SessionEvent{Type: typ, Session: obj}
	r.history = append(r.history, ev)
	if len(r.history) > historySize {
		r.history = slices.Delete(r.history, 0, len(r.history)-historySize)
	}
	for w := range r.watchers {
		if w.namespace == "" || w.namespace == s.ns {
			if !w.push(ev) {
				delete(r.watchers, w)
			}
		}
	}
	return true
}

func (r *registry) get(namespace, name string) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions[sessionKey(namespace, name)]
}

func (r *registry) all() []*session {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*session, 0, len(r.sessions))
	for _, s := range r.sessions {
		out = append(out, s)
	}
	return out
}

// list returns the sessions in namespace ("" for all), sorted by name.
func (r *registry) list(namespace string) ([]operator.Session, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []operator.Session
	for _, s := range r.sessions {
		if namespace == "" || s.ns == namespace {
			out = append(out, s.object())
		}
	}
	slices.SortFunc(out, func(a, b operator.Session) int {
		if a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name {
			return -1
		}
		return 1
	})
	return out, strconv.FormatUint(r.rv, 10)
}

// watcher queues one watch's events for its goroutine.
type watcher struct {
	namespace string
	mu        sync.Mutex
	queue     []backend.SessionEvent
	signal    chan struct{} // capacity 1: something was queued
	overflow  bool
}

// push queues ev; false when the watcher fell too far behind (it is then
// ended).
func (w *watcher) push(ev backend.SessionEvent) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) >= maxWatchBacklog {
		w.overflow = true
	} else {
		w.queue = append(w.queue, ev)
	}
	select {
	case w.signal <- struct{}{}:
	default:
	}
	return !w.overflow
}

func (w *watcher) take() ([]backend.SessionEvent, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q, w.overflow
}

// watch starts a watch; run must be called (on a goroutine the caller
// owns) to deliver it.
func (r *registry) watch(namespace, resourceVersion string) (*watcher, error) {
	w := &watcher{namespace: namespace, signal: make(chan struct{}, 1)}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch resourceVersion {
	case "", "0":
		for _, s := range r.sessions {
			if namespace == "" || s.ns == namespace {
				w.queue = append(w.queue, backend.SessionEvent{Type: backend.Added, Session: s.object()})
			}
		}
		slices.SortFunc(w.queue, func(a, b backend.SessionEvent) int {
			x, _ := strconv.ParseUint(a.Session.ResourceVersion, 10, 64)
			y, _ := strconv.ParseUint(b.Session.ResourceVersion, 10, 64)
			return int(x) - int(y)
		})
	default:
		from, err := strconv.ParseUint(resourceVersion, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("resourceVersion %q is not one this registry gave out: %w", resourceVersion, backend.ErrExpired)
		}
		oldest := r.rv + 1
		if len(r.history) > 0 {
			oldest, _ = strconv.ParseUint(r.history[0].Session.ResourceVersion, 10, 64)
		}
		if from > r.rv || from+1 < oldest {
			return nil, fmt.Errorf("resourceVersion %s is older than the %d changes the operator remembers (or from before it restarted); list again: %w", resourceVersion, historySize, backend.ErrExpired)
		}
		for _, ev := range r.history {
			v, _ := strconv.ParseUint(ev.Session.ResourceVersion, 10, 64)
			if v > from && (namespace == "" || ev.Session.Namespace == namespace) {
				w.queue = append(w.queue, ev)
			}
		}
	}
	if len(w.queue) > 0 {
		w.signal <- struct{}{}
	}
	r.watchers[w] = struct{}{}
	return w, nil
}

func (r *registry) unwatch(w *watcher) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.watchers, w)
}

// run sends w's events to out until ctx ends or w overflows, then closes
// out.
func (r *registry) run(ctx context.Context, w *watcher, out chan<- backend.SessionEvent) {
	defer close(out)
	defer r.unwatch(w)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.signal:
		}
		events, overflow := w.take()
		for _, ev := range events {
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
		if overflow {
			return
		}
	}
}
