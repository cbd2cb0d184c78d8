// Package locks is the operator's table of held ports across sessions:
// which session steals which port of which target, with which filter. A
// steal holds a lock on (namespace, target, port) for as long as its
// session lives; mirrors never conflict and take no lock. Whether two
// steals can coexist is wire.Conflicts, the same rule the agents apply, so
// the operator refuses what the agents would and names the holder in
// words the user understands (user, client, session, filter, since).
//
// A session whose client is gone keeps its locks reserved until its lease
// ends, so that nobody takes its ports while it reconnects; the traffic
// meanwhile goes to the application, as the broker removed its agent
// subscriptions.
package locks

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/remocal/remocal/protocol/wire"
)

// Key is what a lock is held on.
type Key struct {
	Namespace string
	// Target is the target's object name ("deployment.api").
	Target string
	Port   uint16
}

func (k Key) String() string {
	return fmt.Sprintf("port %d of %s/%s", k.Port, k.Namespace, k.Target)
}

// Owner is who holds a lock.
type Owner struct {
	// User is the holder as Kubernetes authenticated them.
	User string
	// Client is the client's own name ("alice@laptop").
	Client string
	// Session is the operator session's name.
	Session string
}

// Lock is one held port.
type Lock struct {
	Key
	Owner
	// Subscription is the session's (client-facing) subscription.
	Subscription string
	Filter       *wire.HTTPFilter
	// Since is when the session took the port.
	Since time.Time
	// ReservedUntil is set while the session is disconnected: the lock
	// is kept for it until then.
	ReservedUntil time.Time
}

// Reserved reports whether the lock is only kept for a disconnected
// session.
func (l Lock) Reserved() bool { return !l.ReservedUntil.IsZero() }

// Holder is the lock as a wire conflict error names it.
func (l Lock) Holder() *wire.Holder {
	since := l.Since
	return &wire.Holder{
		Client: l.Client, Subscription: l.Subscription, Port: l.Port, Mode: wire.ModeSteal,
		Filter: l.Filter, User: l.User, Session: l.Session, Since: &since,
	}
}

// Describe says who holds it with what, since when, for messages.
func (l Lock) Describe() string {
	held := "without a filter"
	if l.Filter != nil {
		held = "with filter " + l.Filter.String()
	}
	s := fmt.Sprintf("%s by %s (%s, session %s) since %s", held, l.User, l.Client, l.Session, l.Since.UTC().Format(time.RFC3339))
	if l.Reserved() {
		s += fmt.Sprintf(", kept for its disconnected session until %s", l.ReservedUntil.UTC().Format(time.RFC3339))
	}
	return s
}

// Request asks for a lock.
type Request struct {
	Key
	Owner
	Subscription string
	Mode         wire.Mode
	Filter       *wire.HTTPFilter
	// Override takes the port from conflicting holders of other
	// sessions. The caller has checked that the user may (RBAC verb
	// override on the target); the table does not.
	Override bool
}

// ConflictError refuses a request: Holder holds what it asked for.
type ConflictError struct {
	Request Request
	Holder  Lock
}

func (e *ConflictError) Error() string {
	if e.Holder.Session == e.Request.Session {
		return fmt.Sprintf("%s is already stolen %s by this same session (subscription %s); unsubscribe that first or use a filter that does not overlap it",
			e.Request.Key, e.Holder.Describe(), e.Holder.Subscription)
	}
	var hint string
	switch {
	case e.Holder.Filter == nil:
		hint = "ask them to stop, use mirror mode, wait for their session to end, or use onConflict: override if you are allowed to"
	case e.Request.Filter == nil:
		hint = "steal with an HTTP filter that does not overlap theirs (for example a header only your requests carry), use mirror mode, or onConflict: override if you are allowed to"
	default:
		hint = "use a filter with a different header value, mirror mode, or onConflict: override if you are allowed to"
	}
	return fmt.Sprintf("%s is already stolen %s; %s", e.Request.Key, e.Holder.Describe(), hint)
}

// Wire is the conflict error a client receives.
func (e *ConflictError) Wire() *wire.Error {
	return &wire.Error{Code: wire.CodeConflict, Message: e.Error(), Holder: e.Holder.Holder()}
}

// Table holds the locks of every session. It is safe for concurrent use.
type Table struct {
	now func() time.Time

	mu    sync.Mutex
	locks map[Key][]*Lock
}

// New returns an empty table reading time from now (time.Now if nil).
func New(now func() time.Time) *Table {
	if now == nil {
		now = time.Now
	}
	return &Table{now: now, locks: map[Key][]*Lock{}}
}

// Acquire takes a lock for a steal, or refuses it with a *ConflictError
// naming the first holder in its way. A mirror takes no lock and never
// conflicts. With Override, conflicting locks of other sessions are
// removed and returned (evicted), so their holders can be told. A
// reserved lock of the requesting session that conflicts is its own to
// take back (a resumed session subscribing again): it is replaced, keeping
// its Since. held is the lock taken (zero for a mirror).
func (t *Table) Acquire(req Request) (held Lock, evicted []Lock, err error) {
	if req.Mode != wire.ModeSteal {
		return Lock{}, nil, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.expireLocked(req.Key, now)
	want := wire.Subscribe{Port: req.Port, Mode: wire.ModeSteal, Filter: req.Filter}
	since := now
	var remove, evict []*Lock
	for _, l := range t.locks[req.Key] {
		if !wire.Conflicts(wire.Subscribe{Port: l.Port, Mode: wire.ModeSteal, Filter: l.Filter}, want) {
			continue
		}
		switch {
		case l.Session == req.Session && l.Reserved():
			remove = append(remove, l)
			if l.Since.Before(since) {
				since = l.Since
			}
		case l.Session == req.Session, !req.Override:
			return Lock{}, nil, &ConflictError{Request: req, Holder: *l}
		default:
			evict = append(evict, l)
		}
	}
	gone := append(remove, evict...)
	t.locks[req.Key] = slices.DeleteFunc(t.locks[req.Key], func(l *Lock) bool { return slices.Contains(gone, l) })
	for _, l := range evict {
		evicted = append(evicted, *l)
	}
	l := &Lock{Key: req.Key, Owner: req.Owner, Subscription: req.Subscription, Filter: req.Filter, Since: since}
	t.locks[req.Key] = append(t.locks[req.Key], l)
	return *l, evicted, nil
}

// Release drops one lock of session; it is not an error if there is none.
func (t *Table) Release(key Key, session, subscription string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deleteLocked(key, func(l *Lock) bool { return l.Session == session && l.Subscription == subscription })
}

// ReleaseSession drops every lock of session and returns them.
func (t *Table) ReleaseSession(session string) []Lock {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Lock
	for key := range t.locks {
		for _, l := range t.locks[key] {
			if l.Session == session {
				out = append(out, *l)
			}
		}
		t.deleteLocked(key, func(l *Lock) bool { return l.Session == session })
	}
	return out
}

// Reserve keeps every lock of session for it until until (its client is
// gone; it may come back).
func (t *Table) Reserve(session string, until time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ls := range t.locks {
		for _, l := range ls {
			if l.Session == session {
				l.ReservedUntil = until
			}
		}
	}
}

// Session returns the locks session holds (reserved ones included, until
// they expire).
func (t *Table) Session(session string) []Lock {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var out []Lock
	for key := range t.locks {
		t.expireLocked(key, now)
		for _, l := range t.locks[key] {
			if l.Session == session {
				out = append(out, *l)
			}
		}
	}
	slices.SortFunc(out, func(a, b Lock) int { return a.Since.Compare(b.Since) })
	return out
}

// Held returns the locks on key.
func (t *Table) Held(key Key) []Lock {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(key, t.now())
	out := make([]Lock, 0, len(t.locks[key]))
	for _, l := range t.locks[key] {
		out = append(out, *l)
	}
	return out
}

// expireLocked drops the reservations on key that ended before now.
func (t *Table) expireLocked(key Key, now time.Time) {
	t.deleteLocked(key, func(l *Lock) bool { return l.Reserved() && !now.Before(l.ReservedUntil) })
}

func (t *Table) deleteLocked(key Key, drop func(*Lock) bool) {
	ls := slices.DeleteFunc(t.locks[key], drop)
	if len(ls) == 0 {
		delete(t.locks, key)
		return
	}
	t.locks[key] = ls
}
