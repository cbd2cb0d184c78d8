package apiserver

import (
	"context"
	"fmt"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/protocol/operator"
)

// sessionStorage serves sessions from the live registry. Delete follows
// the lease rule of the API: a user deletes their own sessions with the
// delete verb; somebody else's also needs kill on sessions.
type sessionStorage struct {
	sessions backend.Sessions
	authz    authorizer.Authorizer
	// stopping ends when the server starts stopping: watches end then.
	// The HTTP server's shutdown waits for every open response, and a
	// watch (the garbage collector of kube-controller-manager keeps one
	// on sessions) would hold a stopping replica, and its Lease, until
	// the shutdown timeout.
	stopping context.Context
}

var (
	_ rest.Storage              = (*sessionStorage)(nil)
	_ rest.Scoper               = (*sessionStorage)(nil)
	_ rest.Lister               = (*sessionStorage)(nil)
	_ rest.Getter               = (*sessionStorage)(nil)
	_ rest.Watcher              = (*sessionStorage)(nil)
	_ rest.GracefulDeleter      = (*sessionStorage)(nil)
	_ rest.CollectionDeleter    = (*sessionStorage)(nil)
	_ rest.SingularNameProvider = (*sessionStorage)(nil)
)

func (*sessionStorage) New() runtime.Object     { return &operator.Session{} }
func (*sessionStorage) NewList() runtime.Object { return &operator.SessionList{} }
func (*sessionStorage) Destroy()                {}
func (*sessionStorage) NamespaceScoped() bool   { return true }
func (*sessionStorage) GetSingularName() string { return "session" }
func (*sessionStorage) Categories() []string    { return []string{"remocal"} }

func (s *sessionStorage) List(ctx context.Context, o *metainternalversion.ListOptions) (runtime.Object, error) {
	items, rv := s.sessions.List(genericapirequest.NamespaceValue(ctx))
	out := &operator.SessionList{ListMeta: metav1.ListMeta{ResourceVersion: rv}, Items: make([]operator.Session, 0, len(items))}
	for _, se := range items {
		if matches(o, &se.ObjectMeta) {
			out.Items = append(out.Items, se)
		}
	}
	return out, nil
}

func (s *sessionStorage) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	se, ok := s.sessions.Get(genericapirequest.NamespaceValue(ctx), name)
	if !ok {
		return nil, apierrors.NewNotFound(operator.Resource(operator.ResourceSessions), name)
	}
	return &se, nil
}

func (s *sessionStorage) Watch(ctx context.Context, o *metainternalversion.ListOptions) (watch.Interface, error) {
	ctx, cancelCtx := context.WithCancel(ctx)
	cancel := cancelCtx
	if s.stopping != nil {
		stop := context.AfterFunc(s.stopping, cancelCtx)
		cancel = func() {
			stop()
			cancelCtx()
		}
	}
	ns := genericapirequest.NamespaceValue(ctx)
	// A "watch list" (sendInitialEvents) is a list as events, a bookmark
	// saying where it ends, then the changes after it.
	var initial []operator.Session
	rv := o.ResourceVersion
	watchList := o.SendInitialEvents != nil && *o.SendInitialEvents
	if watchList {
		initial, rv = s.sessions.List(ns)
	}
	events, err := s.sessions.Watch(ctx, ns, rv)
	if err != nil {
		cancel()
		return nil, backendError(err, operator.ResourceSessions, "")
	}
	w := &sessionWatch{cancel: cancel, out: make(chan watch.Event)}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		defer close(w.out)
		if watchList && !w.sendInitial(ctx, initial, rv, o) {
			return
		}
		w.relay(ctx, events, o)
	}()
	return w, nil
}

// Delete ends one session if the caller may.
func (s *sessionStorage) Delete(ctx context.Context, name string, validate rest.ValidateObjectFunc, _ *metav1.DeleteOptions) (runtime.Object, bool, error) {
	ns := genericapirequest.NamespaceValue(ctx)
	caller, ok := genericapirequest.UserFrom(ctx)
	if !ok {
		return nil, false, apierrors.NewUnauthorized("no authenticated user on the request")
	}
	se, ok := s.sessions.Get(ns, name)
	if !ok {
		return nil, false, apierrors.NewNotFound(operator.Resource(operator.ResourceSessions), name)
	}
	mayKill, err := s.mayDelete(ctx, caller, &se)
	if err != nil {
		return nil, false, apierrors.NewInternalError(err)
	}
	if !mayKill {
		return nil, false, apierrors.NewForbidden(operator.Resource(operator.ResourceSessions), name, fmt.Errorf(
			"session %s belongs to %s; you may delete your own sessions, and another user's only with the %q verb on sessions (the remocal admin role)",
			name, se.Spec.User.Username, operator.VerbKill))
	}
	if validate != nil {
		if err := validate(ctx, &se); err != nil {
			return nil, false, err
		}
	}
	if err := s.sessions.Delete(ctx, ns, name, deleteReason(caller, &se)); err != nil {
		return nil, false, backendError(err, operator.ResourceSessions, name)
	}
	return &se, true, nil
}

// DeleteCollection ends the listed sessions the caller may end (their own,
// and everybody's with kill) and returns those it ended.
func (s *sessionStorage) DeleteCollection(ctx context.Context, validate rest.ValidateObjectFunc, _ *metav1.DeleteOptions, o *metainternalversion.ListOptions) (runtime.Object, error) {
	ns := genericapirequest.NamespaceValue(ctx)
	caller, ok := genericapirequest.UserFrom(ctx)
	if !ok {
		return nil, apierrors.NewUnauthorized("no authenticated user on the request")
	}
	items, rv := s.sessions.List(ns)
	out := &operator.SessionList{ListMeta: metav1.ListMeta{ResourceVersion: rv}, Items: []operator.Session{}}
	for _, se := range items {
		if !matches(o, &se.ObjectMeta) {
			continue
		}
		if ok, err := s.mayDelete(ctx, caller, &se); err != nil {
			return nil, apierrors.NewInternalError(err)
		} else if !ok {
			continue
		}
		if validate != nil {
			if err := validate(ctx, &se); err != nil {
				return nil, err
			}
		}
		switch err := s.sessions.Delete(ctx, se.Namespace, se.Name, deleteReason(caller, &se)); {
		case err == nil:
			out.Items = append(out.Items, se)
		case apierrors.IsNotFound(backendError(err, operator.ResourceSessions, se.Name)):
			// It ended on its own meanwhile.
		default:
			return nil, backendError(err, operator.ResourceSessions, se.Name)
		}
	}
	return out, nil
}

// mayDelete: the owner always may (the delete verb was checked already);
// anybody else needs kill on the session.
func (s *sessionStorage) mayDelete(ctx context.Context, caller user.Info, se *operator.Session) (bool, error) {
	if caller.GetName() == se.Spec.User.Username {
		return true, nil
	}
	return allowed(ctx, s.authz, caller, operator.VerbKill, se.Namespace, operator.ResourceSessions, "", se.Name)
}

// deleteReason is what the session's client is told.
func deleteReason(caller user.Info, se *operator.Session) string {
	if caller.GetName() == se.Spec.User.Username {
		return "the session was deleted by its owner (" + caller.GetName() + ")"
	}
	return "the session was ended by " + caller.GetName() + " (kill)"
}

func (*sessionStorage) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	return toTable(obj, sessionColumns, func(o runtime.Object) ([]any, bool) {
		se, ok := o.(*operator.Session)
		if !ok {
			return nil, false
		}
		var ports []string
		for _, p := range se.Status.Ports {
			ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Mode))
		}
		return []any{se.Name, se.Spec.User.Username, se.Spec.Target, se.Status.Phase, strings.Join(ports, ","),
			se.Spec.Client.Name, age(se.Status.StartTime)}, true
	})
}

var sessionColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "The session's name."},
	{Name: "User", Type: "string", Description: "Who opened it, as Kubernetes authenticated them."},
	{Name: "Target", Type: "string", Description: "The target's object name."},
	{Name: "Phase", Type: "string", Description: "Active, or Disconnected (kept for the client to resume)."},
	{Name: "Ports", Type: "string", Description: "Incoming subscriptions: port/mode."},
	{Name: "Client", Type: "string", Description: "The client's own name."},
	{Name: "Age", Type: "string", Description: "Time since the session started."},
}

// sessionWatch relays the registry's events as a watch.Interface.
type sessionWatch struct {
	cancel context.CancelFunc
	out    chan watch.Event
	done   sync.WaitGroup
}

func (w *sessionWatch) ResultChan() <-chan watch.Event { return w.out }

// Stop ends the watch and waits for its goroutine.
func (w *sessionWatch) Stop() {
	w.cancel()
	w.done.Wait()
}

// sendInitial sends the listed sessions as ADDED and, when the client
// takes bookmarks, the bookmark that ends them; false when ctx ended.
func (w *sessionWatch) sendInitial(ctx context.Context, items []operator.Session, rv string, o *metainternalversion.ListOptions) bool {
	for _, se := range items {
		if !matches(o, &se.ObjectMeta) {
			continue
		}
		if !w.send(ctx, watch.Event{Type: watch.Added, Object: &se}) {
			return false
		}
	}
	if !o.AllowWatchBookmarks {
		return true
	}
	end := &operator.Session{ObjectMeta: metav1.ObjectMeta{ResourceVersion: rv,
		Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}}}
	return w.send(ctx, watch.Event{Type: watch.Bookmark, Object: end})
}

func (w *sessionWatch) send(ctx context.Context, ev watch.Event) bool {
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *sessionWatch) relay(ctx context.Context, events <-chan backend.SessionEvent, o *metainternalversion.ListOptions) {
	for {
		var ev backend.SessionEvent
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events:
			if !ok {
				return
			}
			ev = e
		}
		if !matches(o, &ev.Session.ObjectMeta) {
			continue
		}
		se := ev.Session
		if !w.send(ctx, watch.Event{Type: watch.EventType(ev.Type), Object: &se}) {
			return
		}
	}
}
