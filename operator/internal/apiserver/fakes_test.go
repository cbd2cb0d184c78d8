package apiserver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/protocol/operator"
)

// The fakes below are the unit-test seam of the backend interfaces; the
// real catalogue and broker are tested with the cluster.

type fakeTargets struct {
	items []operator.Target
	// release ends the lists of namespace "slow", which wait for it
	// beyond their request's end, so that only the server's timeout
	// answers them.
	release chan struct{}
}

func (f *fakeTargets) List(ctx context.Context, ns string) ([]operator.Target, error) {
	if ns == "slow" {
		<-ctx.Done()
		<-f.release
		return nil, ctx.Err()
	}
	var out []operator.Target
	for _, t := range f.items {
		if ns == "" || t.Namespace == ns {
			out = append(out, *t.DeepCopy())
		}
	}
	return out, nil
}

func (f *fakeTargets) Get(_ context.Context, ns, name string) (*operator.Target, error) {
	for _, t := range f.items {
		if t.Namespace == ns && t.Name == name {
			return t.DeepCopy(), nil
		}
	}
	return nil, fmt.Errorf("target %s/%s: %w", ns, name, backend.ErrNotFound)
}

// fakeSessions is an in-memory registry with versions and watchers.
type fakeSessions struct {
	mu       sync.Mutex
	rv       int
	items    []operator.Session
	watchers []chan backend.SessionEvent
	deleted  map[string]string // name → reason
}

func (f *fakeSessions) add(s operator.Session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	s.ResourceVersion = strconv.Itoa(f.rv)
	f.items = append(f.items, s)
	f.notify(backend.SessionEvent{Type: backend.Added, Session: s})
}

func (f *fakeSessions) notify(ev backend.SessionEvent) {
	for _, w := range f.watchers {
		w <- ev // buffered; tests make few changes
	}
}

func (f *fakeSessions) List(ns string) ([]operator.Session, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []operator.Session
	for _, s := range f.items {
		if ns == "" || s.Namespace == ns {
			out = append(out, *s.DeepCopy())
		}
	}
	return out, strconv.Itoa(f.rv)
}

func (f *fakeSessions) Get(ns, name string) (operator.Session, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.items {
		if s.Namespace == ns && s.Name == name {
			return *s.DeepCopy(), true
		}
	}
	return operator.Session{}, false
}

func (f *fakeSessions) Watch(ctx context.Context, ns, rv string) (<-chan backend.SessionEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if rv != "" && rv != "0" {
		if n, err := strconv.Atoi(rv); err != nil || n < f.rv {
			return nil, fmt.Errorf("version %s: %w", rv, backend.ErrExpired)
		}
	}
	in := make(chan backend.SessionEvent, 64)
	if rv == "" || rv == "0" {
		for _, s := range f.items {
			in <- backend.SessionEvent{Type: backend.Added, Session: s}
		}
	}
	f.watchers = append(f.watchers, in)
	out := make(chan backend.SessionEvent)
	go func() {
		defer close(out)
		defer func() {
			f.mu.Lock()
			f.watchers = slices.DeleteFunc(f.watchers, func(c chan backend.SessionEvent) bool { return c == in })
			f.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-in:
				if ns != "" && ev.Session.Namespace != ns {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

func (f *fakeSessions) Delete(_ context.Context, ns, name, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.items, func(s operator.Session) bool { return s.Namespace == ns && s.Name == name })
	if i < 0 {
		return fmt.Errorf("session %s/%s: %w", ns, name, backend.ErrNotFound)
	}
	s := f.items[i]
	f.items = slices.Delete(f.items, i, i+1)
	f.rv++
	s.ResourceVersion = strconv.Itoa(f.rv)
	if f.deleted == nil {
		f.deleted = map[string]string{}
	}
	f.deleted[name] = reason
	f.notify(backend.SessionEvent{Type: backend.Deleted, Session: s})
	return nil
}

func (f *fakeSessions) reason(name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.deleted[name]
	return r, ok
}

// echoBroker greets the caller with who and where, then echoes lines.
type echoBroker struct {
	mu     sync.Mutex
	served []string
}

func (b *echoBroker) Serve(ctx context.Context, conn net.Conn, who operator.UserInfo, ns, target string) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	b.mu.Lock()
	b.served = append(b.served, who.Username+" "+ns+"/"+target)
	b.mu.Unlock()
	fmt.Fprintf(conn, "hello %s %v on %s/%s\n", who.Username, who.Groups, ns, target)
	r := bufio.NewReader(io.LimitReader(conn, 1<<20))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(conn, "echo %s", line); err != nil {
			return
		}
	}
}

type fakeStatus struct{}

func (fakeStatus) Status(context.Context) operator.OperatorState {
	return operator.OperatorState{Version: "test", Leader: "op-0", Self: "op-0", Sessions: 2, Healthy: true}
}

// rbac is a fake authorizer: a user may do the verbs listed for them on
// "resource" or "resource/subresource"; anything else is denied.
type rbac map[string][]string

func (r rbac) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	if !a.IsResourceRequest() {
		// As the cluster's system:discovery role: discovery and OpenAPI
		// for everybody authenticated.
		if a.GetVerb() == "get" && (strings.HasPrefix(a.GetPath(), "/apis") || strings.HasPrefix(a.GetPath(), "/openapi/")) {
			return authorizer.DecisionAllow, "", nil
		}
		return authorizer.DecisionNoOpinion, "", nil
	}
	res := a.GetResource()
	if a.GetSubresource() != "" {
		res += "/" + a.GetSubresource()
	}
	if a.GetAPIGroup() == operator.Group && slices.Contains(r[a.GetUser().GetName()], a.GetVerb()+" "+res) {
		return authorizer.DecisionAllow, "", nil
	}
	return authorizer.DecisionNoOpinion, "no rule", nil
}
